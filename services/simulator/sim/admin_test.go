package sim_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/shared/meetingurl"
)

// joinViaAPI joins like a page's script does and returns the page token.
func joinViaAPI(t *testing.T, h *harness, id, name string) string {
	t.Helper()
	code, b := h.call("POST", "/sim/api/meetings/"+id+"/join", `{"name":"`+name+`"}`)
	if code != http.StatusOK {
		t.Fatalf("join: %d %s", code, b)
	}
	var st struct{ Token, View string }
	if err := json.Unmarshal(b, &st); err != nil || st.Token == "" {
		t.Fatalf("join answer %s: %v", b, err)
	}
	return st.Token
}

func TestAdminCreateMeetingLinksAreRecognised(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	opts := meetingurl.Options{SimulatorURL: h.url}
	cases := []struct {
		spec     string
		platform usherv1.Platform
		link     *regexp.Regexp
	}{
		{`{"platform":"zoom"}`, usherv1.Platform_PLATFORM_ZOOM,
			regexp.MustCompile(`^` + regexp.QuoteMeta(h.url) + `/zoom/j/[1-9][0-9]{10}\?pwd=[A-Za-z0-9]{32}$`)},
		{`{"platform":"teams"}`, usherv1.Platform_PLATFORM_TEAMS,
			regexp.MustCompile(`^` + regexp.QuoteMeta(h.url) + `/teams/l/meetup-join/19%3ameeting_[A-Za-z0-9]+%40thread\.v2/0\?context=%7B%22Tid%22`)},
		{`{"platform":"meet"}`, usherv1.Platform_PLATFORM_MEET,
			regexp.MustCompile(`^` + regexp.QuoteMeta(h.url) + `/meet/[a-z]{3}-[a-z]{4}-[a-z]{3}$`)},
	}
	for _, c := range cases {
		m := h.create(c.spec)
		if !c.link.MatchString(m.URL) {
			t.Errorf("%s: url %q does not match %s", c.spec, m.URL, c.link)
		}
		links := []string{m.URL}
		if c.platform == usherv1.Platform_PLATFORM_TEAMS {
			if !regexp.MustCompile(`/teams/meet/[0-9]{13}\?p=[A-Za-z0-9]{6}$`).MatchString(m.AltURL) {
				t.Errorf("alt_url %q", m.AltURL)
			}
			links = append(links, m.AltURL)
		} else if m.AltURL != "" {
			t.Errorf("%s: unexpected alt_url %q", c.spec, m.AltURL)
		}
		for _, l := range links {
			got, err := meetingurl.Parse(l, opts)
			if err != nil || got.Platform != c.platform || !got.Simulated {
				t.Errorf("meetingurl.Parse(%q) = %+v, %v; want a simulated %v link", l, got, err, c.platform)
			}
		}
		if len(m.Participants) != 1 || m.Participants[0] != (sim.Participant{Name: "Host", Identity: sim.IdentityHuman, State: sim.StateInMeeting, Human: true}) {
			t.Errorf("default participants %+v, want the Host", m.Participants)
		}
		if got := h.meeting(m.ID); got.URL != m.URL || got.Platform != string(strings.ToLower(strings.TrimPrefix(c.platform.String(), "PLATFORM_"))) {
			t.Errorf("GET answers %+v", got)
		}
	}
	var list struct{ Meetings []sim.Meeting }
	h.admin("GET", "/admin/meetings", "", http.StatusOK, &list)
	if len(list.Meetings) != len(cases) {
		t.Fatalf("listed %d meetings, want %d", len(list.Meetings), len(cases))
	}
}

func TestAdminRefusesBadInputNamingTheField(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"zoom"}`)
	cases := []struct{ path, body, want string }{
		{"/admin/meetings", ``, "JSON object"},
		{"/admin/meetings", `[1]`, "JSON object"},
		{"/admin/meetings", `{"platform":"skype"}`, "platform must be zoom, teams or meet"},
		{"/admin/meetings", `{}`, "platform is required"},
		{"/admin/meetings", `{"platform":"zoom","colour":"red"}`, `unknown field "colour"`},
		{"/admin/meetings", `{"platform":"zoom","waiting_room":"yes"}`, "waiting_room must be true or false"},
		{"/admin/meetings", `{"platform":"zoom","auto_admit_after_seconds":-1}`, "auto_admit_after_seconds must be between"},
		{"/admin/meetings", `{"platform":"zoom","participants":"Host"}`, "participants must be an array"},
		{"/admin/meetings", `{"platform":"zoom","participants":["Host",""]}`, "participants[1] is required"},
		{"/admin/meetings", `{"platform":"zoom","fault":"explode"}`, "fault must be"},
		{"/admin/meetings", `{"platform":"meet","auth_required":true}`, "auth_required is not supported for meet"},
		{"/admin/meetings", `{"platform":"zoom","no_answer_after_seconds":1}`, "no_answer_after_seconds is only supported for meet"},
		{"/admin/meetings/" + m.ID + "/admit", `{}`, "name is required"},
		{"/admin/meetings/" + m.ID + "/participants", `{"name":"` + strings.Repeat("x", 101) + `"}`, "name must be at most 100 characters"},
		{"/admin/microsoft/accounts", `{"password":"x"}`, "email is required"},
		{"/admin/microsoft/accounts", `{"email":"nope","password":"x"}`, "email must be an email address"},
		{"/admin/microsoft/accounts", `{"email":"a@b.test"}`, "password is required"},
		{"/admin/microsoft/accounts", `{"email":"a@b.test","password":"x","behavior":"sleepy"}`, "behavior must be ok, mfa, locked or captcha"},
		{"/admin/microsoft/sessions/expire", `{}`, "email is required"},
		{"/admin/zoom/users", `{"display_name":"x"}`, "id is required"},
		{"/admin/zoom/users", `{"id":"u1","email":"x"}`, "email must be an email address"},
	}
	for _, c := range cases {
		code, b := h.call("POST", c.path, c.body)
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, c.want) {
			t.Errorf("POST %s %s: %d %s, want 400 with %q", c.path, c.body, code, b, c.want)
		}
	}
}

func TestAdminUnknownMeetingIs404(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/admin/meetings/12345678901", ""},
		{"POST", "/admin/meetings/12345678901/admit", `{"name":"x"}`},
		{"POST", "/admin/meetings/12345678901/deny", `{"name":"x"}`},
		{"POST", "/admin/meetings/12345678901/remove", `{"name":"x"}`},
		{"POST", "/admin/meetings/12345678901/end", ``},
		{"POST", "/admin/meetings/12345678901/participants", `{"name":"x"}`},
		{"POST", "/admin/meetings/12345678901/participants/leave", `{"name":"x"}`},
		{"POST", "/admin/microsoft/sessions/expire", `{"email":"nobody@x.test"}`},
		{"POST", "/admin/nothing-here", `{}`},
	} {
		code, b := h.call(c.method, c.path, c.body)
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); code != http.StatusNotFound || err != nil || e.Error == "" {
			t.Errorf("%s %s: %d %s, want 404 with an error", c.method, c.path, code, b)
		}
	}
}

func TestAdminParticipantActions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"teams","waiting_room":true,"participants":["Host","Bob"]}`)
	path := "/admin/meetings/" + m.ID
	joinViaAPI(t, h, m.ID, "Bot A")
	joinViaAPI(t, h, m.ID, "Bot B")
	joinViaAPI(t, h, m.ID, "Bot C")

	var got sim.Meeting
	h.admin("POST", path+"/admit", `{"name":"Bot A"}`, http.StatusOK, &got)
	if p, _ := got.Find("Bot A"); p.State != sim.StateInMeeting || got.InMeeting != 3 {
		t.Fatalf("after admit: %+v", got)
	}
	h.admin("POST", path+"/deny", `{"name":"Bot B"}`, http.StatusOK, &got)
	if p, _ := got.Find("Bot B"); p.State != sim.StateDenied {
		t.Fatalf("after deny: %+v", p)
	}
	h.admin("POST", path+"/remove", `{"name":"Bot C"}`, http.StatusOK, &got) // from the lobby
	if p, _ := got.Find("Bot C"); p.State != sim.StateRemoved {
		t.Fatalf("after remove: %+v", p)
	}
	// Wrong states are conflicts naming the state.
	for _, c := range []struct{ action, name string }{{"admit", "Bot A"}, {"deny", "Bot A"}, {"admit", "Bot B"}, {"participants/leave", "Bot A"}} {
		code, b := h.call("POST", path+"/"+c.action, `{"name":"`+c.name+`"}`)
		if code != http.StatusNotFound && code != http.StatusConflict {
			t.Errorf("%s %s: %d %s, want 409 (or 404 for a non-human leave)", c.action, c.name, code, b)
		}
	}
	if code, b := h.call("POST", path+"/admit", `{"name":"Nobody"}`); code != http.StatusNotFound {
		t.Errorf("admit unknown name: %d %s, want 404", code, b)
	}

	h.admin("POST", path+"/participants", `{"name":"Carol"}`, http.StatusOK, &got)
	if p, _ := got.Find("Carol"); p.State != sim.StateInMeeting || p.Identity != sim.IdentityHuman || !p.Human {
		t.Fatalf("human join: %+v", p)
	}
	h.admin("POST", path+"/participants/leave", `{"name":"Bob"}`, http.StatusOK, &got)
	if p, _ := got.Find("Bob"); p.State != sim.StateLeft || p.LeftReason != sim.LeftSelf {
		t.Fatalf("human leave: %+v", p)
	}
	h.admin("POST", path+"/end", "", http.StatusOK, &got)
	if got.State != sim.MeetingEnded || got.EndedAt == nil || got.InMeeting != 0 {
		t.Fatalf("after end: %+v", got)
	}
	h.admin("POST", path+"/end", "", http.StatusOK, nil) // idempotent
	if code, _ := h.call("POST", path+"/participants", `{"name":"Late"}`); code != http.StatusConflict {
		t.Fatalf("joining an ended meeting: %d, want 409", code)
	}
	if code, b := h.call("POST", "/sim/api/meetings/"+m.ID+"/join", `{"name":"Late bot"}`); code != http.StatusConflict || !strings.Contains(string(b), `"view":"ended"`) {
		t.Fatalf("page join of an ended meeting: %d %s", code, b)
	}
}

func TestAdminAccountsUsersStatsReset(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	var acct map[string]string
	h.admin("POST", "/admin/microsoft/accounts", `{"email":"Bot@Contoso.test","password":"pw"}`, http.StatusCreated, &acct)
	if acct["display_name"] != "Bot@Contoso.test" || acct["behavior"] != "ok" || acct["password"] != "" {
		t.Fatalf("account answer %v (must default and never echo the password)", acct)
	}
	h.admin("POST", "/admin/microsoft/accounts", `{"email":"bot@contoso.test","password":"pw2","behavior":"mfa"}`, http.StatusOK, &acct)
	if acct["behavior"] != "mfa" {
		t.Fatalf("replace: %v", acct)
	}
	var exp struct{ Expired int }
	h.admin("POST", "/admin/microsoft/sessions/expire", `{"email":"BOT@contoso.test"}`, http.StatusOK, &exp)

	var u sim.ZoomUser
	h.admin("POST", "/admin/zoom/users", `{"id":"u1"}`, http.StatusCreated, &u)
	if u.DisplayName != "u1" {
		t.Fatalf("zoom user display name %q, want the id", u.DisplayName)
	}
	h.admin("POST", "/admin/zoom/users", `{"id":"u1","display_name":"Bot One"}`, http.StatusOK, &u)

	h.create(`{"platform":"meet"}`)
	mintZAK(t, h, "u1")
	if st := h.stats(); st.Meetings != 1 || st.ZAKsMinted != 1 {
		t.Fatalf("stats %+v", st)
	}
	h.admin("POST", "/admin/reset", "", http.StatusNoContent, nil)
	if st := h.stats(); st != (sim.Stats{}) {
		t.Fatalf("stats after reset %+v, want zero", st)
	}
	var list struct{ Meetings []sim.Meeting }
	h.admin("GET", "/admin/meetings", "", http.StatusOK, &list)
	if len(list.Meetings) != 0 {
		t.Fatalf("meetings after reset: %d", len(list.Meetings))
	}
	if code, _ := h.call("POST", "/admin/microsoft/sessions/expire", `{"email":"bot@contoso.test"}`); code != http.StatusNotFound {
		t.Fatalf("account survived reset: %d", code)
	}
}

func TestGoAccessors(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Config{})
	if _, err := s.CreateMeeting(sim.MeetingSpec{Platform: sim.Zoom}); !errors.Is(err, sim.ErrNoPublicURL) {
		t.Fatalf("create without a public URL: %v, want ErrNoPublicURL", err)
	}
	if err := s.SetPublicURL("http://127.0.0.1:1/prefix"); err == nil {
		t.Fatal("SetPublicURL accepted a path")
	}
	if err := s.SetPublicURL("http://127.0.0.1:8090"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMeeting(sim.MeetingSpec{Platform: "skype"}); !errors.Is(err, sim.ErrInvalid) {
		t.Fatalf("bad platform: %v, want ErrInvalid", err)
	}
	m, err := s.CreateMeeting(sim.MeetingSpec{Platform: sim.Meet, Participants: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if m.URL != "http://127.0.0.1:8090/meet/"+m.ID || len(m.Participants) != 0 {
		t.Fatalf("meeting %+v", m)
	}
	if _, err := s.Admit(m.ID, "Nobody"); !errors.Is(err, sim.ErrNotFound) {
		t.Fatalf("admit nobody: %v, want ErrNotFound", err)
	}
	if _, err := s.AddParticipant(m.ID, "Dana"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Admit(m.ID, "Dana"); !errors.Is(err, sim.ErrConflict) {
		t.Fatalf("admit someone in the meeting: %v, want ErrConflict", err)
	}
	if _, err := s.Meeting("nope"); !errors.Is(err, sim.ErrNotFound) {
		t.Fatalf("unknown meeting: %v", err)
	}
	if _, err := s.End(m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(m.ID, "Dana"); !errors.Is(err, sim.ErrConflict) {
		t.Fatalf("remove after end: %v, want ErrConflict", err)
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  sim.Config
		want string
	}{
		{sim.Config{PublicURL: "ftp://x"}, "USHER_SIMULATOR_PUBLIC_URL"},
		{sim.Config{PublicURL: "http://x:1/path"}, "USHER_SIMULATOR_PUBLIC_URL"},
		{sim.Config{ZAKTTL: -1}, "USHER_SIMULATOR_ZAK_TTL"},
		{sim.Config{SessionTTL: -1}, "USHER_SIMULATOR_SESSION_TTL"},
		{sim.Config{PresenceTimeout: -1}, "USHER_SIMULATOR_PRESENCE_TIMEOUT"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	if err := (sim.Config{PublicURL: "http://127.0.0.1:8090/"}).Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}
