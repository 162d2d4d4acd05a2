package sim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/usherhq/usher/services/simulator/sim"
)

// TestPageAPIRefusals covers the join refusals a page normally never reaches
// (its join button is absent) but a script or a stale page can.
func TestPageAPIRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	teams := h.create(`{"platform":"teams","auth_required":true}`)
	zoom := h.create(`{"platform":"zoom","auth_required":true}`)
	cases := []struct {
		name, id, body string
		header         []string
		code           int
		view           string
	}{
		{"teams org-only without a session", teams.ID, `{"name":"Anon"}`, nil, http.StatusUnauthorized, "login_required"},
		{"teams with a stale session cookie", teams.ID, `{"name":"Anon"}`, []string{"Cookie", sim.CookieESTSAuth + "=stale"}, http.StatusUnauthorized, "login_required"},
		{"zoom authenticated-only without a token", zoom.ID, `{"name":"Anon","pwd":"` + pwdOf(t, zoom) + `"}`, nil, http.StatusForbidden, "auth_required"},
		{"zoom with a forged token", zoom.ID, `{"zak":"forged","pwd":"` + pwdOf(t, zoom) + `"}`, nil, http.StatusForbidden, "zak_invalid"},
		{"unknown meeting", "00000000000", `{"name":"x"}`, nil, http.StatusNotFound, "error"},
		{"unknown field", zoom.ID, `{"name":"x","role":"host"}`, nil, http.StatusBadRequest, "error"},
	}
	for _, c := range cases {
		code, b := h.call("POST", "/sim/api/meetings/"+c.id+"/join", c.body, c.header...)
		var st struct {
			View     string `json:"view"`
			LoginURL string `json:"login_url"`
		}
		if err := json.Unmarshal(b, &st); err != nil || code != c.code || st.View != c.view {
			t.Errorf("%s: %d %s, want %d with view %s", c.name, code, b, c.code, c.view)
			continue
		}
		if c.view == "login_required" && st.LoginURL != h.url+"/microsoft/login?ru="+url.QueryEscape(h.url+"/teams/prejoin/"+teams.ID) {
			t.Errorf("%s: login_url %q", c.name, st.LoginURL)
		}
	}
	for _, id := range []string{teams.ID, zoom.ID} {
		if n := len(h.meeting(id).Participants); n != 1 {
			t.Errorf("meeting %s has %d participants after refusals, want only the host", id, n)
		}
	}
	if code, _ := h.call("GET", "/sim/api/participants/not-a-token", ""); code != http.StatusNotFound {
		t.Errorf("poll with an unknown token: %d, want 404", code)
	}
}
