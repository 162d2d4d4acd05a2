package sim_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/shared/logging"
)

func poll(t *testing.T, h *harness, token string) (view string, inMeeting int) {
	t.Helper()
	code, b := h.call("GET", "/sim/api/participants/"+token, "")
	if code != http.StatusOK {
		t.Fatalf("poll: %d %s", code, b)
	}
	var st struct {
		View      string
		InMeeting int `json:"in_meeting"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.View, st.InMeeting
}

func TestAutoAdmit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := newHarness(t, sim.Config{}, sim.WithClock(clock.Now))
	m := h.create(`{"platform":"teams","waiting_room":true,"auto_admit_after_seconds":2}`)
	tok := joinViaAPI(t, h, m.ID, "Bot")
	clock.Advance(1999 * time.Millisecond)
	if v, _ := poll(t, h, tok); v != "waiting" {
		t.Fatalf("view %q before the auto-admit delay, want waiting", v)
	}
	clock.Advance(time.Millisecond)
	if v, n := poll(t, h, tok); v != "in_meeting" || n != 2 {
		t.Fatalf("view %q with %d in the meeting after the delay, want in_meeting with 2", v, n)
	}
}

func TestPresenceTimeoutAndPageGone(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := newHarness(t, sim.Config{PresenceTimeout: 10 * time.Second}, sim.WithClock(clock.Now))
	m := h.create(`{"platform":"zoom"}`)
	a := joinZoomViaAPI(t, h, m, "Polling bot")
	joinZoomViaAPI(t, h, m, "Silent bot")
	for range 3 {
		clock.Advance(4 * time.Second)
		poll(t, h, a)
	}
	got := h.meeting(m.ID)
	if p, _ := got.Find("Polling bot"); p.State != sim.StateInMeeting {
		t.Fatalf("a polling page dropped: %+v", p)
	}
	if p, _ := got.Find("Silent bot"); p.State != sim.StateLeft || p.LeftReason != sim.LeftDisconnected {
		t.Fatalf("a silent page stayed: %+v", p)
	}
	if code, _ := h.call("POST", "/sim/api/participants/"+a+"/gone", ""); code != http.StatusNoContent {
		t.Fatalf("gone beacon: %d", code)
	}
	if p, _ := h.meeting(m.ID).Find("Polling bot"); p.LeftReason != sim.LeftDisconnected {
		t.Fatalf("after the pagehide beacon: %+v", p)
	}
}

func joinZoomViaAPI(t *testing.T, h *harness, m sim.Meeting, name string) string {
	t.Helper()
	code, b := h.call("POST", "/sim/api/meetings/"+m.ID+"/join", `{"name":"`+name+`","pwd":"`+pwdOf(t, m)+`"}`)
	if code != http.StatusOK {
		t.Fatalf("join: %d %s", code, b)
	}
	var st struct{ Token string }
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Token
}

func TestWaitParticipantSeesTimeDrivenChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"meet","waiting_room":true,"auto_admit_after_seconds":0.2}`)
	joinViaAPI(t, h, m.ID, "Bot")
	h.waitParticipant(m.ID, "Bot", sim.StateInMeeting) // nobody polls: WaitParticipant ticks itself

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.sim.WaitParticipant(ctx, m.ID, "Bot", sim.StateRemoved); err == nil || !strings.Contains(err.Error(), "still in_meeting") {
		t.Fatalf("wait for a state that never comes: %v", err)
	}
}

// TestSecretsNeverLogged runs a sign-in, a ZAK mint and a ZAK join with a
// capturing logger and checks that no password, token or cookie value appears.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	var logs logging.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: logging.Redact}))
	h := newHarness(t, sim.Config{}, sim.WithLogger(log))
	const password = "correct-horse-battery-staple"
	h.admin("POST", "/admin/microsoft/accounts", `{"email":"a@b.test","password":"`+password+`"}`, http.StatusCreated, nil)
	zak := mintZAK(t, h, "alice")
	m := h.create(`{"platform":"zoom","auth_required":true}`)
	code, b := h.call("POST", "/sim/api/meetings/"+m.ID+"/join", `{"zak":"`+zak+`","pwd":"`+pwdOf(t, m)+`"}`)
	if code != http.StatusOK {
		t.Fatalf("zak join: %d %s", code, b)
	}
	var st struct{ Token string }
	_ = json.Unmarshal(b, &st)

	// The whole login over plain HTTP: email, password, KMSI.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) *http.Response {
		resp, err := client.PostForm(h.url+path, form)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	page := post("/microsoft/login", url.Values{"loginfmt": {"a@b.test"}})
	body := readAll(t, page)
	flow := between(body, `name="flowToken" value="`, `"`)
	if flow == "" {
		t.Fatalf("no flowToken on the password page: %s", body)
	}
	post("/microsoft/login/password", url.Values{"flowToken": {flow}, "passwd": {password}})
	resp := post("/microsoft/login/kmsi", url.Values{"flowToken": {flow}, "kmsi": {"Yes"}})
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == sim.CookieESTSAuth {
			cookie = c.Value
		}
	}
	if resp.StatusCode != http.StatusFound || cookie == "" {
		t.Fatalf("kmsi: %d, cookie %q", resp.StatusCode, cookie)
	}
	if h.stats().MicrosoftLogins != 1 {
		t.Fatal("login not counted")
	}
	out := logs.String()
	if !strings.Contains(out, "microsoft sign-in") || !strings.Contains(out, "participant joined") {
		t.Fatalf("expected log lines missing: %s", out)
	}
	for what, secret := range map[string]string{"password": password, "zak": zak, "cookie": cookie, "flow token": flow, "page token": st.Token} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the logs", what)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}
