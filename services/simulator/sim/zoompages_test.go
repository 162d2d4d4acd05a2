package sim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/services/simulator/sim"
)

// webClientURL turns the meeting link B/zoom/j/<id>?pwd= into the web client's
// B/zoom/wc/<id>/join?pwd= (what the drivers open).
func webClientURL(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(u.Path, "/zoom/j/")
	u.Path = "/zoom/wc/" + id + "/join"
	return u.String()
}

func mintZAK(t *testing.T, h *harness, user string) string {
	t.Helper()
	code, b := h.call("GET", "/zoom/v2/users/"+url.PathEscape(user)+"/token?type=zak", "", "Authorization", "Bearer test")
	if code != http.StatusOK {
		t.Fatalf("mint zak: %d %s", code, b)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		t.Fatalf("mint zak: %s %v", b, err)
	}
	return out.Token
}

func TestZoomWalkthroughWaitingRoomAdmitEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"zoom","waiting_room":true}`)
	p := h.page()

	navigate(t, p, m.URL)
	click(t, elText(t, p, "a", "Join from your browser"))
	name := el(t, p, "#input-for-name")
	if got := p.MustInfo().Title; got != "Join Meeting - Zoom" {
		t.Fatalf("title %q, want Join Meeting - Zoom", got)
	}
	el(t, p, "#preview-audio-control-button")
	cam := el(t, p, "#preview-video-control-button")
	join := el(t, p, "button.preview-join-button")
	if !hasAttr(t, join, "disabled") {
		t.Fatal("join button enabled before a name was typed")
	}
	input(t, name, "Usher Bot")
	waitFor(t, "join button enabled", func() bool { v, _ := join.Attribute("disabled"); return v == nil })
	click(t, cam)
	if got := attr(t, cam, "aria-label"); got != "Start Video" {
		t.Fatalf("camera aria-label after click %q, want Start Video", got)
	}
	click(t, join)
	elText(t, p, "body", "Please wait, the meeting host will let you in soon.")
	if got := h.waitParticipant(m.ID, "Usher Bot", sim.StateWaiting); got.Identity != sim.IdentityAnonymous {
		t.Fatalf("identity %q, want anonymous", got.Identity)
	}

	h.admin("POST", "/admin/meetings/"+m.ID+"/admit", `{"name":"Usher Bot"}`, http.StatusOK, nil)
	el(t, p, ".meeting-app")
	elText(t, p, "#wc-footer", "2 participants")
	if got := text(t, el(t, p, ".footer-button__number-counter")); got != "2" {
		t.Fatalf("participant counter %q, want 2", got)
	}
	el(t, p, `[footer-section="right"] button[aria-label="Leave"]`)
	if got := h.meeting(m.ID); got.InMeeting != 2 {
		t.Fatalf("in_meeting %d, want 2: %+v", got.InMeeting, got.Participants)
	}

	h.admin("POST", "/admin/meetings/"+m.ID+"/participants", `{"name":"Alice"}`, http.StatusOK, nil)
	elText(t, p, "#wc-footer", "3 participants")

	h.admin("POST", "/admin/meetings/"+m.ID+"/end", "", http.StatusOK, nil)
	elText(t, p, ".zm-modal-body-title", "This meeting has been ended by host")
	got := h.meeting(m.ID)
	bot, _ := got.Find("Usher Bot")
	if got.State != sim.MeetingEnded || bot.State != sim.StateLeft || bot.LeftReason != sim.LeftMeetingEnded {
		t.Fatalf("after end: meeting %s, bot %+v", got.State, bot)
	}
}

func TestZoomLeaveWithConfirmation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"zoom"}`)
	p := h.page()
	navigate(t, p, webClientURL(t, m.URL))
	input(t, el(t, p, "#input-for-name"), "Leaver")
	click(t, el(t, p, "button.preview-join-button"))
	click(t, el(t, p, `[footer-section="right"] button[aria-label="Leave"]`))
	click(t, elText(t, p, "button.leave-meeting-options__btn--danger", "Leave Meeting"))
	elText(t, p, "body", "You have left the meeting")
	if got := h.waitParticipant(m.ID, "Leaver", sim.StateLeft); got.LeftReason != sim.LeftSelf {
		t.Fatalf("left reason %q, want %q", got.LeftReason, sim.LeftSelf)
	}
}

func TestZoomRemovedAndDenied(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	for _, c := range []struct{ name, spec, action string }{
		{"removed", `{"platform":"zoom"}`, "remove"},
		{"denied", `{"platform":"zoom","waiting_room":true}`, "deny"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := h.create(c.spec)
			p := h.page()
			navigate(t, p, webClientURL(t, m.URL))
			input(t, el(t, p, "#input-for-name"), "Bot")
			click(t, el(t, p, "button.preview-join-button"))
			if c.action == "deny" {
				elText(t, p, "body", "Please wait, the meeting host will let you in soon.")
			} else {
				el(t, p, ".meeting-app")
			}
			h.admin("POST", "/admin/meetings/"+m.ID+"/"+c.action, `{"name":"Bot"}`, http.StatusOK, nil)
			elText(t, p, "body", "You have been removed")
			want := sim.StateRemoved
			if c.action == "deny" {
				want = sim.StateDenied
			}
			h.waitParticipant(m.ID, "Bot", want)
		})
	}
}

func TestZoomAuthenticatedOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"zoom","auth_required":true}`)
	h.admin("POST", "/admin/zoom/users", `{"id":"u-123","email":"bot@acme.test","display_name":"Acme Notetaker"}`, http.StatusCreated, nil)

	t.Run("anonymous refused", func(t *testing.T) {
		p := h.page()
		navigate(t, p, webClientURL(t, m.URL))
		elText(t, p, "body", "This meeting is for authorized attendees only")
		elText(t, p, "body", "Sign in to join")
		elText(t, p, "button", "Leave meeting")
		if has, _, _ := p.Has("button.preview-join-button"); has {
			t.Fatal("authorized-only page shows a join button")
		}
	})

	t.Run("valid zak joins as the zoom user", func(t *testing.T) {
		zak := mintZAK(t, h, "bot@acme.test") // the email names the same user
		p := h.page()
		navigate(t, p, webClientURL(t, m.URL)+"&zak="+url.QueryEscape(zak))
		name := el(t, p, "#input-for-name")
		if v := name.MustProperty("value").Str(); v != "Acme Notetaker" {
			t.Fatalf("name prefilled %q, want Acme Notetaker", v)
		}
		if !hasAttr(t, name, "readonly") {
			t.Fatal("name field not read-only with a valid ZAK")
		}
		click(t, el(t, p, "button.preview-join-button"))
		el(t, p, ".meeting-app")
		got := h.waitParticipant(m.ID, "Acme Notetaker", sim.StateInMeeting)
		if got.Identity != "u-123" {
			t.Fatalf("identity %q, want the Zoom user id u-123", got.Identity)
		}
	})

	t.Run("invalid zak shows 4013 and is counted", func(t *testing.T) {
		before := h.stats().ZAKRejections
		p := h.page()
		navigate(t, p, webClientURL(t, m.URL)+"&zak=not-a-real-token")
		elText(t, p, "body", "The OBF or ZAK token is not provided or invalid. Make sure it's not expired or malformed.")
		if has, _, _ := p.Has("button.preview-join-button"); has {
			t.Fatal("invalid-ZAK page shows a join button")
		}
		if got := h.stats().ZAKRejections; got != before+1 {
			t.Fatalf("zak_rejections %d, want %d", got, before+1)
		}
	})
}

func TestZoomExpiredZAKRejected(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := newHarness(t, sim.Config{ZAKTTL: time.Minute}, sim.WithClock(clock.Now))
	m := h.create(`{"platform":"zoom"}`)
	zak := mintZAK(t, h, "alice")
	clock.Advance(time.Minute)
	p := h.page()
	navigate(t, p, webClientURL(t, m.URL)+"&zak="+url.QueryEscape(zak))
	elText(t, p, "body", "The OBF or ZAK token is not provided or invalid.")
	if got := h.stats().ZAKRejections; got != 1 {
		t.Fatalf("zak_rejections %d, want 1", got)
	}
}

func TestZoomUnknownMeeting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	p := h.page()
	navigate(t, p, h.url+"/zoom/wc/98765432101/join?pwd=x")
	elText(t, p, "body", "This meeting link is invalid (3,001)")
	if got := p.MustInfo().Title; got != "Error - Zoom" {
		t.Fatalf("title %q, want Error - Zoom", got)
	}
}

func TestZoomWrongPasscode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"zoom"}`)
	id := strings.TrimPrefix(strings.Split(m.URL, "?")[0], h.url+"/zoom/j/")
	p := h.page()
	navigate(t, p, h.url+"/zoom/wc/"+id+"/join")
	input(t, el(t, p, "#input-for-name"), "Bot")
	input(t, el(t, p, "#input-for-pwd"), "wrong")
	click(t, el(t, p, "button.preview-join-button"))
	elText(t, p, ".zm-modal-body-title", "Passcode wrong")
	if len(h.meeting(m.ID).Participants) != 1 {
		t.Fatal("a wrong passcode let someone in")
	}
}
