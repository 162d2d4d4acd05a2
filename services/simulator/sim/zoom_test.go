package sim_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/services/simulator/sim"
)

func TestZoomTokenEndpointNeedsBearer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	for _, auth := range []string{"", "Basic abc", "Bearer ", "bearer x"} {
		code, b := h.call("GET", "/zoom/v2/users/alice/token?type=zak", "", "Authorization", auth)
		var e struct {
			Code    int
			Message string
		}
		if err := json.Unmarshal(b, &e); code != http.StatusUnauthorized || err != nil || e.Code != 124 {
			t.Errorf("Authorization %q: %d %s, want 401 with Zoom's code 124", auth, code, b)
		}
	}
	code, b := h.call("GET", "/zoom/v2/users/alice/token?type=token", "", "Authorization", "Bearer x")
	if code != http.StatusBadRequest || !strings.Contains(string(b), "type must be zak or onbehalf") {
		t.Errorf("type=token: %d %s, want 400 naming type", code, b)
	}
	if st := h.stats(); st.ZAKsMinted != 0 {
		t.Fatalf("zaks_minted %d after refusals, want 0", st.ZAKsMinted)
	}
}

func TestZAKsAreBoundToTheirUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	h.admin("POST", "/admin/zoom/users", `{"id":"bob","email":"bob@acme.test","display_name":"Bob"}`, http.StatusCreated, nil)
	alice := mintZAK(t, h, "alice")
	alice2 := mintZAK(t, h, "alice")
	bob := mintZAK(t, h, "bob@acme.test")
	if alice == alice2 || len(alice) < 40 {
		t.Fatalf("tokens must be random and long: %q %q", alice, alice2)
	}
	for tok, want := range map[string]sim.ZoomUser{
		alice: {ID: "alice", DisplayName: "alice"},
		bob:   {ID: "bob", Email: "bob@acme.test", DisplayName: "Bob"},
	} {
		got, err := h.sim.ZAKUser(tok)
		if err != nil || got != want {
			t.Errorf("ZAKUser = %+v, %v; want %+v (a token names only its own user)", got, err, want)
		}
	}
	if _, err := h.sim.ZAKUser("forged-token"); !errors.Is(err, sim.ErrTokenInvalid) {
		t.Errorf("unknown token: %v, want ErrTokenInvalid", err)
	}
	obf, err := h.sim.MintZoomToken("alice", sim.TokenOnBehalf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.sim.ZAKUser(obf); !errors.Is(err, sim.ErrTokenInvalid) {
		t.Errorf("an OBF token used as a ZAK: %v, want ErrTokenInvalid", err)
	}
	if st := h.stats(); st.ZAKsMinted != 4 {
		t.Fatalf("zaks_minted %d, want 4", st.ZAKsMinted)
	}

	// Through the page API: bob's token joins as bob, whatever name is typed.
	m := h.create(`{"platform":"zoom","auth_required":true}`)
	code, b := h.call("POST", "/sim/api/meetings/"+m.ID+"/join", `{"name":"Mallory","zak":"`+bob+`","pwd":"`+pwdOf(t, m)+`"}`)
	if code != http.StatusOK {
		t.Fatalf("join with bob's zak: %d %s", code, b)
	}
	if p, _ := h.meeting(m.ID).Find("Bob"); p.Identity != "bob" {
		t.Fatalf("participant %+v, want identity bob", p)
	}
}

func TestZAKExpires(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := newHarness(t, sim.Config{ZAKTTL: 5 * time.Minute}, sim.WithClock(clock.Now))
	tok := mintZAK(t, h, "alice")
	clock.Advance(5*time.Minute - time.Second)
	if _, err := h.sim.ZAKUser(tok); err != nil {
		t.Fatalf("token rejected before its TTL: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := h.sim.ZAKUser(tok); !errors.Is(err, sim.ErrTokenExpired) {
		t.Fatalf("token after its TTL: %v, want ErrTokenExpired", err)
	}
	m := h.create(`{"platform":"zoom"}`)
	code, b := h.call("POST", "/sim/api/meetings/"+m.ID+"/join", `{"name":"x","zak":"`+tok+`","pwd":"`+pwdOf(t, m)+`"}`)
	if code != http.StatusForbidden || !strings.Contains(string(b), `"view":"zak_invalid"`) {
		t.Fatalf("join with an expired zak: %d %s", code, b)
	}
	if st := h.stats(); st.ZAKRejections != 1 {
		t.Fatalf("zak_rejections %d, want 1", st.ZAKRejections)
	}
}

func pwdOf(t *testing.T, m sim.Meeting) string {
	t.Helper()
	_, pwd, ok := strings.Cut(m.URL, "?pwd=")
	if !ok {
		t.Fatalf("no pwd in %q", m.URL)
	}
	return pwd
}
