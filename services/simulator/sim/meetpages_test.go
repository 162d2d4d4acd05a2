package sim_test

import (
	"net/http"
	"testing"

	"github.com/usherhq/usher/services/simulator/sim"
)

func TestMeetWalkthroughAskAdmitEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"meet","waiting_room":true}`)
	p := h.page()

	navigate(t, p, m.URL)
	name := el(t, p, `input[type="text"][aria-label="Your name"]`)
	if got := attr(t, name, "placeholder"); got != "Your name" {
		t.Fatalf("placeholder %q", got)
	}
	mic := el(t, p, `[aria-label="Turn off microphone"]`)
	el(t, p, `[aria-label="Turn off camera"]`)
	click(t, mic)
	el(t, p, `[aria-label="Turn on microphone"]`)
	join := elText(t, p, "button span", "Ask to join")
	input(t, name, "Usher Bot")
	click(t, join)
	elText(t, p, "body", "Asking to be let in...")
	h.waitParticipant(m.ID, "Usher Bot", sim.StateWaiting)

	h.admin("POST", "/admin/meetings/"+m.ID+"/admit", `{"name":"Usher Bot"}`, http.StatusOK, nil)
	el(t, p, `button[jsname="CQylAd"][aria-label="Leave call"]`)
	el(t, p, `button[aria-label="People"]`)
	el(t, p, `[data-self-name="Usher Bot"]`)
	waitFor(t, "two tiles", func() bool { es, err := p.Elements("[data-participant-id]"); return err == nil && len(es) == 2 })

	h.admin("POST", "/admin/meetings/"+m.ID+"/participants", `{"name":"Alice"}`, http.StatusOK, nil)
	waitFor(t, "three tiles", func() bool { es, err := p.Elements("[data-participant-id]"); return err == nil && len(es) == 3 })

	h.admin("POST", "/admin/meetings/"+m.ID+"/end", "", http.StatusOK, nil)
	elText(t, p, ".roSPhc", "Your host ended the meeting for everyone")
}

func TestMeetJoinNowAndLeave(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	m := h.create(`{"platform":"meet","participants":[]}`)
	p := h.page()
	navigate(t, p, m.URL)
	input(t, el(t, p, `input[aria-label="Your name"]`), "Solo")
	click(t, elText(t, p, "button span", "Join now"))
	el(t, p, `[data-self-name="Solo"]`)
	click(t, el(t, p, `button[aria-label="Leave call"]`))
	elText(t, p, "body", "You left the meeting")
	h.waitParticipant(m.ID, "Solo", sim.StateLeft)
}

func TestMeetDeniedNoAnswerRemoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	cases := []struct {
		name, spec, action, want, state string
	}{
		{"denied", `{"platform":"meet","waiting_room":true}`, "deny", "Someone in the call denied your request to join", sim.StateDenied},
		{"no answer", `{"platform":"meet","waiting_room":true,"no_answer_after_seconds":0.3}`, "", "No one responded to your request to join the call", sim.StateLeft},
		{"removed", `{"platform":"meet"}`, "remove", "You've been removed from the meeting", sim.StateRemoved},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := h.create(c.spec)
			p := h.page()
			navigate(t, p, m.URL)
			input(t, el(t, p, `input[aria-label="Your name"]`), "Bot")
			click(t, el(t, p, "button[jsname] span"))
			switch c.action {
			case "remove":
				el(t, p, "[data-self-name]")
			case "deny":
				elText(t, p, "body", "Asking to be let in...")
			}
			if c.action != "" {
				h.admin("POST", "/admin/meetings/"+m.ID+"/"+c.action, `{"name":"Bot"}`, http.StatusOK, nil)
			}
			elText(t, p, "body", c.want)
			h.waitParticipant(m.ID, "Bot", c.state)
		})
	}
}

func TestMeetUnknownMeeting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	p := h.page()
	navigate(t, p, h.url+"/meet/abc-defg-hij")
	elText(t, p, "body", "Check your meeting code")
}

func TestFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	type platform struct {
		name, nameInput, join, ended string
		open                         func(t *testing.T, m sim.Meeting) string
	}
	platforms := []platform{
		{"zoom", "#input-for-name", "button.preview-join-button", "This meeting has been ended by host",
			func(t *testing.T, m sim.Meeting) string { return webClientURL(t, m.URL) }},
		{"teams", `[data-tid="prejoin-display-name-input"]`, `[data-tid="prejoin-join-button"]`, "The meeting has ended",
			func(_ *testing.T, m sim.Meeting) string { return h.url + "/teams/prejoin/" + m.ID }},
		{"meet", `input[aria-label="Your name"]`, "button[jsname]", "Your host ended the meeting for everyone",
			func(_ *testing.T, m sim.Meeting) string { return m.URL }},
	}
	for _, pl := range platforms {
		t.Run(pl.name+" no_join_button", func(t *testing.T) {
			m := h.create(`{"platform":"` + pl.name + `","fault":"no_join_button"}`)
			p := h.page()
			navigate(t, p, pl.open(t, m))
			el(t, p, pl.nameInput) // the pre-join page is there…
			if has, _, _ := p.Has(pl.join); has {
				t.Fatal("…but it must have no join button")
			}
		})
		t.Run(pl.name+" end_while_joining", func(t *testing.T) {
			m := h.create(`{"platform":"` + pl.name + `","fault":"end_while_joining","waiting_room":true}`)
			p := h.page()
			navigate(t, p, pl.open(t, m))
			input(t, el(t, p, pl.nameInput), "Bot")
			click(t, el(t, p, pl.join))
			elText(t, p, "body", pl.ended)
			if got := h.meeting(m.ID); got.State != sim.MeetingEnded {
				t.Fatalf("meeting %s, want ended", got.State)
			}
		})
	}
}
