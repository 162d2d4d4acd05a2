package sim_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/usherhq/usher/services/simulator/sim"
)

func TestTeamsWalkthroughLobbyAdmitAloneEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"teams","waiting_room":true}`)
	p := h.page()

	navigate(t, p, m.URL)
	click(t, elText(t, p, `button[aria-label="Join on this browser"]`, "Continue on this browser"))
	elText(t, p, "body", "Microsoft Teams meeting")
	name := el(t, p, `input[data-tid="prejoin-display-name-input"]`)
	if got := attr(t, name, "placeholder"); got != "Type your name" {
		t.Fatalf("placeholder %q", got)
	}
	mic := el(t, p, `[data-tid="toggle-mute"]`)
	cam := el(t, p, `[data-tid="toggle-video"]`)
	if attr(t, mic, "aria-checked") != "true" || attr(t, cam, "aria-checked") != "true" {
		t.Fatal("mic and camera should start on")
	}
	click(t, mic)
	click(t, cam)
	if attr(t, mic, "aria-checked") != "false" || attr(t, cam, "aria-checked") != "false" {
		t.Fatal("toggles did not turn off")
	}
	input(t, name, "Usher Bot")
	click(t, elText(t, p, `[data-tid="prejoin-join-button"]`, "Join now"))
	elText(t, p, "body", "Someone will let you in shortly")
	h.waitParticipant(m.ID, "Usher Bot", sim.StateWaiting)

	h.admin("POST", "/admin/meetings/"+m.ID+"/admit", `{"name":"Usher Bot"}`, http.StatusOK, nil)
	el(t, p, "#callingButtons-showMoreBtn")
	el(t, p, "#roster-button")
	el(t, p, `#hangup-button[aria-label="Leave"]`)
	got := h.waitParticipant(m.ID, "Usher Bot", sim.StateInMeeting)
	if got.Identity != sim.IdentityAnonymous {
		t.Fatalf("identity %q, want anonymous", got.Identity)
	}
	if has, _, _ := p.HasR("p", "You're the only one here"); has {
		t.Fatal("alone text shown while the host is in the meeting")
	}

	h.admin("POST", "/admin/meetings/"+m.ID+"/participants/leave", `{"name":"Host"}`, http.StatusOK, nil)
	elText(t, p, "body", "You're the only one here")
	h.admin("POST", "/admin/meetings/"+m.ID+"/participants", `{"name":"Alice"}`, http.StatusOK, nil)
	waitFor(t, "alone text gone", func() bool { has, _, _ := p.HasR("p", "You're the only one here"); return !has })

	h.admin("POST", "/admin/meetings/"+m.ID+"/end", "", http.StatusOK, nil)
	elText(t, p, "#calling-retry-screen-title", "The meeting has ended")
}

func TestTeamsShortLinkAndHangUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"teams"}`)
	if m.AltURL == "" {
		t.Fatal("teams meeting without alt_url")
	}
	p := h.page()
	navigate(t, p, m.AltURL)
	click(t, el(t, p, `button[aria-label="Join on this browser"]`))
	input(t, el(t, p, `[data-tid="prejoin-display-name-input"]`), "Hanger")
	click(t, el(t, p, `[data-tid="prejoin-join-button"]`))
	click(t, el(t, p, "#hangup-button"))
	elText(t, p, "body", "You left the meeting")
	if got := h.waitParticipant(m.ID, "Hanger", sim.StateLeft); got.LeftReason != sim.LeftSelf {
		t.Fatalf("left reason %q", got.LeftReason)
	}
}

func TestTeamsDeniedAndRemoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	t.Run("denied", func(t *testing.T) {
		m := h.create(`{"platform":"teams","waiting_room":true}`)
		p := h.page()
		navigate(t, p, m.URL)
		click(t, el(t, p, `button[aria-label="Join on this browser"]`))
		input(t, el(t, p, `[data-tid="prejoin-display-name-input"]`), "Bot")
		click(t, el(t, p, `[data-tid="prejoin-join-button"]`))
		elText(t, p, "body", "Someone will let you in shortly")
		h.admin("POST", "/admin/meetings/"+m.ID+"/deny", `{"name":"Bot"}`, http.StatusOK, nil)
		elText(t, p, "body", "Sorry, but you were denied access to the meeting")
		el(t, p, `[data-tid="calling-retry-cancelbutton"]`)
		h.waitParticipant(m.ID, "Bot", sim.StateDenied)
	})
	t.Run("removed", func(t *testing.T) {
		m := h.create(`{"platform":"teams"}`)
		p := h.page()
		navigate(t, p, m.URL)
		click(t, el(t, p, `button[aria-label="Join on this browser"]`))
		input(t, el(t, p, `[data-tid="prejoin-display-name-input"]`), "Bot")
		click(t, el(t, p, `[data-tid="prejoin-join-button"]`))
		el(t, p, "#callingButtons-showMoreBtn")
		h.admin("POST", "/admin/meetings/"+m.ID+"/remove", `{"name":"Bot"}`, http.StatusOK, nil)
		elText(t, p, "#calling-retry-screen-title", "You've been removed from this meeting")
		h.waitParticipant(m.ID, "Bot", sim.StateRemoved)
	})
}

func TestTeamsOrgOnlyBouncesToLoginAndAdmitsTheAccount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	h.admin("POST", "/admin/microsoft/accounts",
		`{"email":"notetaker@contoso.test","password":"pw","display_name":"Contoso Notetaker"}`, http.StatusCreated, nil)
	m := h.create(`{"platform":"teams","auth_required":true,"waiting_room":true}`)
	p := h.page()

	// Anonymous: the launcher's button leads to the Microsoft login.
	navigate(t, p, m.URL)
	click(t, el(t, p, `button[aria-label="Join on this browser"]`))
	el(t, p, `input[name="loginfmt"][type="email"]`)
	ru, err := url.Parse(p.MustInfo().URL)
	if err != nil || ru.Path != "/microsoft/login" || ru.Query().Get("ru") != h.url+"/teams/prejoin/"+m.ID {
		t.Fatalf("bounced to %q, want the login with ru = the pre-join page", p.MustInfo().URL)
	}

	// Signed in: back on the pre-join page as the account.
	signIn(t, p, "notetaker@contoso.test", "pw")
	click(t, el(t, p, `#idSIButton9[value="Yes"]`))
	elText(t, p, "body", "Contoso Notetaker")
	if has, _, _ := p.Has(`[data-tid="prejoin-display-name-input"]`); has {
		t.Fatal("signed-in pre-join shows the name field")
	}
	click(t, el(t, p, `[data-tid="prejoin-join-button"]`))
	elText(t, p, "body", "Someone will let you in shortly")
	h.admin("POST", "/admin/meetings/"+m.ID+"/admit", `{"name":"Contoso Notetaker"}`, http.StatusOK, nil)
	el(t, p, "#callingButtons-showMoreBtn")
	got := h.waitParticipant(m.ID, "Contoso Notetaker", sim.StateInMeeting)
	if got.Identity != "notetaker@contoso.test" {
		t.Fatalf("identity %q, want the account email", got.Identity)
	}
	if got := h.stats().MicrosoftLogins; got != 1 {
		t.Fatalf("microsoft_logins %d, want 1", got)
	}

	// Session expired: the next Teams page load bounces to login again.
	var out struct{ Expired int }
	h.admin("POST", "/admin/microsoft/sessions/expire", `{"email":"notetaker@contoso.test"}`, http.StatusOK, &out)
	if out.Expired != 1 {
		t.Fatalf("expired %d sessions, want 1", out.Expired)
	}
	navigate(t, p, h.url+"/teams/prejoin/"+m.ID)
	el(t, p, `input[name="loginfmt"][type="email"]`)
}

func TestTeamsStaleSessionBouncesEvenOnOpenMeetings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	h.admin("POST", "/admin/microsoft/accounts", `{"email":"a@contoso.test","password":"pw","display_name":"A"}`, http.StatusCreated, nil)
	m := h.create(`{"platform":"teams"}`)
	p := h.page()
	navigate(t, p, h.url+"/microsoft/login?ru="+url.QueryEscape("/teams/prejoin/"+m.ID))
	signIn(t, p, "a@contoso.test", "pw")
	click(t, el(t, p, `#idSIButton9[value="Yes"]`))
	click(t, el(t, p, `[data-tid="prejoin-join-button"]`)) // open meeting, signed in
	el(t, p, "#callingButtons-showMoreBtn")
	if got := h.waitParticipant(m.ID, "A", sim.StateInMeeting); got.Identity != "a@contoso.test" {
		t.Fatalf("identity %q", got.Identity)
	}
	h.admin("POST", "/admin/microsoft/sessions/expire", `{"email":"a@contoso.test"}`, http.StatusOK, nil)
	navigate(t, p, m.URL)
	click(t, el(t, p, `button[aria-label="Join on this browser"]`))
	el(t, p, `input[name="loginfmt"]`)
}

func TestTeamsUnknownMeeting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	p := h.page()
	navigate(t, p, h.url+"/teams/l/meetup-join/19%3ameeting_nope%40thread.v2/0")
	elText(t, p, "body", "Looks like the meeting URL is incorrect. Please check the URL and try again.")
	navigate(t, p, h.url+"/teams/meet/1234567?p=abc")
	elText(t, p, "body", "Looks like the meeting URL is incorrect.")
}
