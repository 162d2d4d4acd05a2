package sim

import (
	"net/url"
	"slices"
	"time"
)

// Platforms.
const (
	Zoom  = "zoom"
	Teams = "teams"
	Meet  = "meet"
)

// Faults a meeting can be created with (docs/simulator-pages.md).
const (
	// FaultNoJoinButton: the pre-join page never shows its join button.
	FaultNoJoinButton = "no_join_button"
	// FaultEndWhileJoining: the meeting ends as soon as a browser clicks join.
	FaultEndWhileJoining = "end_while_joining"
)

// Participant states.
const (
	StateWaiting   = "waiting"
	StateInMeeting = "in_meeting"
	StateLeft      = "left"
	StateDenied    = "denied"
	StateRemoved   = "removed"
)

// Why a participant is in StateLeft.
const (
	// LeftSelf: the participant clicked Leave (hang-up, cancel in the lobby),
	// or a human left through the admin API.
	LeftSelf = "left"
	// LeftDisconnected: the participant's page went away (closed, navigated
	// elsewhere, browser gone) without leaving.
	LeftDisconnected = "disconnected"
	// LeftMeetingEnded: the meeting ended while the participant was in it or waiting.
	LeftMeetingEnded = "meeting_ended"
	// LeftNoAnswer: Meet's "No one responded to your request to join the call".
	LeftNoAnswer = "no_answer"
)

// Identities that are not accounts.
const (
	// IdentityAnonymous: a browser that joined under a typed name.
	IdentityAnonymous = "anonymous"
	// IdentityHuman: a participant added through the admin API (the "Host" and friends).
	IdentityHuman = "human"
)

// Meeting states.
const (
	MeetingOpen  = "open"
	MeetingEnded = "ended"
)

// MeetingSpec describes a meeting to create (the admin API's POST /admin/meetings body).
type MeetingSpec struct {
	// Platform is Zoom, Teams or Meet.
	Platform string `json:"platform"`
	// AuthRequired: Zoom — authenticated users only (a valid ZAK is needed);
	// Teams — org-only (a signed-in Microsoft account is needed). Refused for Meet.
	AuthRequired bool `json:"auth_required"`
	// WaitingRoom puts joiners in the waiting room / lobby / "Ask to join".
	WaitingRoom bool `json:"waiting_room"`
	// AutoAdmitAfterSeconds admits waiting joiners after this long; nil admits manually only.
	AutoAdmitAfterSeconds *float64 `json:"auto_admit_after_seconds,omitempty"`
	// NoAnswerAfterSeconds (Meet only): a join request nobody answers this long
	// ends with "No one responded to your request to join the call". Nil waits forever.
	NoAnswerAfterSeconds *float64 `json:"no_answer_after_seconds,omitempty"`
	// Participants are the humans already in the meeting; nil means ["Host"], empty means none.
	Participants []string `json:"participants"`
	// Fault is "", FaultNoJoinButton or FaultEndWhileJoining.
	Fault string `json:"fault"`
}

// Seconds returns a pointer to s, for MeetingSpec's optional durations.
func Seconds(s float64) *float64 { return &s }

// Meeting is what the simulator knows about a meeting (GET /admin/meetings/{id}).
type Meeting struct {
	ID string `json:"id"`
	// Platform is Zoom, Teams or Meet.
	Platform string `json:"platform"`
	// URL is the meeting link (docs/simulator-pages.md); AltURL is Teams' /meet/<n>?p= form.
	URL                   string     `json:"url"`
	AltURL                string     `json:"alt_url,omitempty"`
	AuthRequired          bool       `json:"auth_required"`
	WaitingRoom           bool       `json:"waiting_room"`
	AutoAdmitAfterSeconds *float64   `json:"auto_admit_after_seconds,omitempty"`
	NoAnswerAfterSeconds  *float64   `json:"no_answer_after_seconds,omitempty"`
	Fault                 string     `json:"fault"`
	State                 string     `json:"state"`
	InMeeting             int        `json:"in_meeting"`
	CreatedAt             time.Time  `json:"created_at"`
	EndedAt               *time.Time `json:"ended_at,omitempty"`
	// Participants in join order, humans included; someone who joins again is a new entry.
	Participants []Participant `json:"participants"`
}

// Participant is one person or bot in (or once in) a meeting.
type Participant struct {
	Name string `json:"name"`
	// Identity is IdentityAnonymous, IdentityHuman, the Zoom user id of a valid
	// ZAK, or the signed-in Microsoft account's email.
	Identity string `json:"identity"`
	// State is waiting, in_meeting, left, denied or removed.
	State string `json:"state"`
	// LeftReason says why State is left.
	LeftReason string `json:"left_reason,omitempty"`
	// Human is true for participants added through the admin API.
	Human bool `json:"human"`
}

// Find returns the most recent participant with that name.
func (m Meeting) Find(name string) (Participant, bool) {
	for i := len(m.Participants) - 1; i >= 0; i-- {
		if m.Participants[i].Name == name {
			return m.Participants[i], true
		}
	}
	return Participant{}, false
}

// meeting is the simulator's record of a meeting. Guarded by Simulator.mu.
type meeting struct {
	id        string
	spec      MeetingSpec
	autoAdmit time.Duration // < 0: never
	noAnswer  time.Duration // < 0: never
	zoomPwd   string
	teamsOid  string
	teamsNum  string
	teamsPass string
	createdAt time.Time
	endedAt   time.Time
	nextPID   int
	people    []*participant
}

// participant is one entry of a meeting. Guarded by Simulator.mu.
type participant struct {
	meeting  *meeting
	publicID string // shown on pages (tiles); not a secret
	token    string // the page's capability for the page API; "" for humans
	name     string
	identity string
	human    bool
	state    string
	reason   string
	waiting  time.Time // when it entered the waiting room
	lastSeen time.Time // last poll from its page
}

const teamsTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func (m *meeting) ended() bool { return !m.endedAt.IsZero() }

// link is the meeting link in the form of docs/simulator-pages.md.
func (m *meeting) link(base string) string {
	switch m.spec.Platform {
	case Zoom:
		return base + "/zoom/j/" + m.id + "?pwd=" + m.zoomPwd
	case Teams:
		ctx := `{"Tid":"` + teamsTenant + `","Oid":"` + m.teamsOid + `"}`
		return base + "/teams/l/meetup-join/19%3ameeting_" + m.id + "%40thread.v2/0?context=" + url.QueryEscape(ctx)
	default:
		return base + "/meet/" + m.id
	}
}

func (m *meeting) altLink(base string) string {
	if m.spec.Platform != Teams {
		return ""
	}
	return base + "/teams/meet/" + m.teamsNum + "?p=" + m.teamsPass
}

func (m *meeting) inMeeting() int {
	n := 0
	for _, p := range m.people {
		if p.state == StateInMeeting {
			n++
		}
	}
	return n
}

func (m *meeting) view(base string) Meeting {
	v := Meeting{
		ID:                    m.id,
		Platform:              m.spec.Platform,
		AuthRequired:          m.spec.AuthRequired,
		WaitingRoom:           m.spec.WaitingRoom,
		AutoAdmitAfterSeconds: m.spec.AutoAdmitAfterSeconds,
		NoAnswerAfterSeconds:  m.spec.NoAnswerAfterSeconds,
		Fault:                 m.spec.Fault,
		State:                 MeetingOpen,
		InMeeting:             m.inMeeting(),
		CreatedAt:             m.createdAt,
		Participants:          make([]Participant, 0, len(m.people)),
	}
	if base != "" {
		v.URL, v.AltURL = m.link(base), m.altLink(base)
	}
	if m.ended() {
		v.State = MeetingEnded
		t := m.endedAt
		v.EndedAt = &t
	}
	for _, p := range m.people {
		v.Participants = append(v.Participants, Participant{
			Name: p.name, Identity: p.identity, State: p.state, LeftReason: p.reason, Human: p.human,
		})
	}
	return v
}

// tick applies time-driven changes: auto-admit, Meet's no-answer, and pages
// that stopped polling. It reports whether anything changed.
func (m *meeting) tick(now time.Time, presence time.Duration) bool {
	if m.ended() {
		return false
	}
	changed := false
	for _, p := range m.people {
		if p.human || (p.state != StateWaiting && p.state != StateInMeeting) {
			continue
		}
		switch {
		case now.Sub(p.lastSeen) > presence:
			p.leave(LeftDisconnected)
		case p.state == StateWaiting && m.autoAdmit >= 0 && !now.Before(p.waiting.Add(m.autoAdmit)):
			p.state = StateInMeeting
		case p.state == StateWaiting && m.noAnswer >= 0 && !now.Before(p.waiting.Add(m.noAnswer)):
			p.leave(LeftNoAnswer)
		default:
			continue
		}
		changed = true
	}
	return changed
}

func (p *participant) leave(reason string) {
	p.state, p.reason = StateLeft, reason
}

// present reports whether the participant is waiting or in the meeting.
func (p *participant) present() bool { return p.state == StateWaiting || p.state == StateInMeeting }

// find returns the newest participant named name whose state is one of
// states (and, when humanOnly, who is a human). It fails with ErrNotFound
// when nobody has that name and ErrConflict when nobody with it is in such a state.
func (m *meeting) find(name string, humanOnly bool, states ...string) (*participant, error) {
	var seen *participant
	for i := len(m.people) - 1; i >= 0; i-- {
		p := m.people[i]
		if p.name != name || (humanOnly && !p.human) {
			continue
		}
		if slices.Contains(states, p.state) {
			return p, nil
		}
		if seen == nil {
			seen = p
		}
	}
	if seen == nil {
		if humanOnly {
			return nil, notFoundf("no human participant named %q in meeting %s", name, m.id)
		}
		return nil, notFoundf("no participant named %q in meeting %s", name, m.id)
	}
	return nil, conflictf("participant %q is %s, not %s", name, seen.state, joinOr(states))
}

func joinOr(states []string) string {
	switch len(states) {
	case 0:
		return ""
	case 1:
		return states[0]
	}
	out := ""
	for i, s := range states {
		switch {
		case i == 0:
		case i == len(states)-1:
			out += " or "
		default:
			out += ", "
		}
		out += s
	}
	return out
}

// end ends the meeting: everyone waiting or in it has left.
func (m *meeting) end(now time.Time) {
	if m.ended() {
		return
	}
	m.endedAt = now
	for _, p := range m.people {
		if p.present() {
			p.leave(LeftMeetingEnded)
		}
	}
}
