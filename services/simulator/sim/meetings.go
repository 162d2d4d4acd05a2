package sim

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// maxNameLen bounds display names.
const maxNameLen = 100

// CreateMeeting creates a meeting. Its links are built from the public URL
// (ErrNoPublicURL when unknown). Bad specs fail with ErrInvalid naming the field.
func (s *Simulator) CreateMeeting(spec MeetingSpec) (Meeting, error) {
	base := s.PublicURL()
	if base == "" {
		return Meeting{}, ErrNoPublicURL
	}
	return s.createMeeting(spec, base)
}

func (s *Simulator) createMeeting(spec MeetingSpec, base string) (Meeting, error) {
	if err := normalizeSpec(&spec); err != nil {
		return Meeting{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	m := &meeting{spec: spec, createdAt: now, autoAdmit: -1, noAnswer: -1}
	if a := spec.AutoAdmitAfterSeconds; a != nil {
		m.autoAdmit = time.Duration(*a * float64(time.Second))
	}
	if a := spec.NoAnswerAfterSeconds; a != nil {
		m.noAnswer = time.Duration(*a * float64(time.Second))
	}
	for {
		switch spec.Platform {
		case Zoom:
			m.id = zoomMeetingID()
			m.zoomPwd = randomFrom(alphanum, 32)
		case Teams:
			m.id = randomFrom(alphanum, 32)
			m.teamsOid = uuid()
			m.teamsNum = randomFrom("123456789", 1) + randomFrom(digits, 12)
			m.teamsPass = randomFrom(alphanum, 6)
		default:
			m.id = meetCode()
		}
		_, taken := s.meetings[m.id]
		_, numTaken := s.teamsNums[m.teamsNum]
		if !taken && (m.teamsNum == "" || !numTaken) {
			break
		}
	}
	for _, name := range spec.Participants {
		m.nextPID++
		m.people = append(m.people, &participant{
			meeting: m, publicID: fmt.Sprintf("p%d", m.nextPID), name: name,
			identity: IdentityHuman, human: true, state: StateInMeeting, lastSeen: now,
		})
	}
	s.meetings[m.id] = m
	if m.teamsNum != "" {
		s.teamsNums[m.teamsNum] = m.id
	}
	s.notifyLocked()
	s.log.Info("meeting created", "meeting_id", m.id, "platform", spec.Platform,
		"auth_required", spec.AuthRequired, "waiting_room", spec.WaitingRoom, "fault", spec.Fault)
	return m.view(base), nil
}

func normalizeSpec(spec *MeetingSpec) error {
	switch spec.Platform {
	case Zoom, Teams, Meet:
	case "":
		return invalidf("platform is required: zoom, teams or meet")
	default:
		return invalidf("platform must be zoom, teams or meet, got %q", spec.Platform)
	}
	if spec.AuthRequired && spec.Platform == Meet {
		return invalidf("auth_required is not supported for meet (signed-in Meet is not simulated)")
	}
	if err := checkSeconds("auto_admit_after_seconds", spec.AutoAdmitAfterSeconds); err != nil {
		return err
	}
	if spec.NoAnswerAfterSeconds != nil && spec.Platform != Meet {
		return invalidf("no_answer_after_seconds is only supported for meet")
	}
	if err := checkSeconds("no_answer_after_seconds", spec.NoAnswerAfterSeconds); err != nil {
		return err
	}
	switch spec.Fault {
	case "", FaultNoJoinButton, FaultEndWhileJoining:
	default:
		return invalidf("fault must be %q, %q or empty, got %q", FaultNoJoinButton, FaultEndWhileJoining, spec.Fault)
	}
	if spec.Participants == nil {
		spec.Participants = []string{"Host"}
	}
	names := make([]string, len(spec.Participants))
	for i, n := range spec.Participants {
		n, err := checkName(fmt.Sprintf("participants[%d]", i), n)
		if err != nil {
			return err
		}
		names[i] = n
	}
	spec.Participants = names
	return nil
}

func checkSeconds(field string, v *float64) error {
	if v == nil {
		return nil
	}
	if math.IsNaN(*v) || *v < 0 || *v > 7*24*3600 {
		return invalidf("%s must be between 0 and 604800, got %v", field, *v)
	}
	return nil
}

func checkName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", invalidf("%s is required", field)
	}
	if len([]rune(name)) > maxNameLen {
		return "", invalidf("%s must be at most %d characters", field, maxNameLen)
	}
	return name, nil
}

// Meeting returns a meeting (URLs empty when the public URL is unknown).
func (s *Simulator) Meeting(id string) (Meeting, error) {
	return s.meetingView(id, s.PublicURL())
}

func (s *Simulator) meetingView(id, base string) (Meeting, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.lookupLocked(id)
	if err != nil {
		return Meeting{}, err
	}
	return m.view(base), nil
}

// Meetings returns every meeting, newest first.
func (s *Simulator) Meetings() []Meeting { return s.meetingViews(s.PublicURL()) }

func (s *Simulator) meetingViews(base string) []Meeting {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Meeting, 0, len(s.meetings))
	now := s.now()
	for _, m := range s.meetings {
		if m.tick(now, s.cfg.PresenceTimeout) {
			s.notifyLocked()
		}
		out = append(out, m.view(base))
	}
	slices.SortFunc(out, func(a, b Meeting) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out
}

// lookupLocked finds a meeting and applies its time-driven changes.
func (s *Simulator) lookupLocked(id string) (*meeting, error) {
	m, ok := s.meetings[id]
	if !ok {
		return nil, notFoundf("meeting %q not found", id)
	}
	if m.tick(s.now(), s.cfg.PresenceTimeout) {
		s.notifyLocked()
	}
	return m, nil
}

// change runs f on an open meeting and returns the meeting afterwards.
func (s *Simulator) change(id, base string, f func(m *meeting, now time.Time) error) (Meeting, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.lookupLocked(id)
	if err != nil {
		return Meeting{}, err
	}
	if m.ended() {
		return Meeting{}, conflictf("meeting %s has ended", id)
	}
	if err := f(m, s.now()); err != nil {
		return Meeting{}, err
	}
	s.notifyLocked()
	return m.view(base), nil
}

// Admit lets the waiting participant named name in.
func (s *Simulator) Admit(id, name string) (Meeting, error) { return s.admit(id, name, s.PublicURL()) }

func (s *Simulator) admit(id, name, base string) (Meeting, error) {
	return s.byName(id, name, base, func(m *meeting, name string) error {
		p, err := m.find(name, false, StateWaiting)
		if err != nil {
			return err
		}
		p.state = StateInMeeting
		return nil
	})
}

// Deny refuses the waiting participant named name.
func (s *Simulator) Deny(id, name string) (Meeting, error) { return s.deny(id, name, s.PublicURL()) }

func (s *Simulator) deny(id, name, base string) (Meeting, error) {
	return s.byName(id, name, base, func(m *meeting, name string) error {
		p, err := m.find(name, false, StateWaiting)
		if err != nil {
			return err
		}
		p.state = StateDenied
		return nil
	})
}

// Remove removes the participant named name from the meeting or its waiting room.
func (s *Simulator) Remove(id, name string) (Meeting, error) {
	return s.remove(id, name, s.PublicURL())
}

func (s *Simulator) remove(id, name, base string) (Meeting, error) {
	return s.byName(id, name, base, func(m *meeting, name string) error {
		p, err := m.find(name, false, StateInMeeting, StateWaiting)
		if err != nil {
			return err
		}
		p.state = StateRemoved
		return nil
	})
}

// AddParticipant makes a human named name join the meeting.
func (s *Simulator) AddParticipant(id, name string) (Meeting, error) {
	return s.addParticipant(id, name, s.PublicURL())
}

func (s *Simulator) addParticipant(id, name, base string) (Meeting, error) {
	return s.byName(id, name, base, func(m *meeting, name string) error {
		m.nextPID++
		m.people = append(m.people, &participant{
			meeting: m, publicID: fmt.Sprintf("p%d", m.nextPID), name: name,
			identity: IdentityHuman, human: true, state: StateInMeeting, lastSeen: s.now(),
		})
		return nil
	})
}

// ParticipantLeaves makes the human named name leave (so a bot can find itself alone).
func (s *Simulator) ParticipantLeaves(id, name string) (Meeting, error) {
	return s.participantLeaves(id, name, s.PublicURL())
}

func (s *Simulator) participantLeaves(id, name, base string) (Meeting, error) {
	return s.byName(id, name, base, func(m *meeting, name string) error {
		p, err := m.find(name, true, StateInMeeting)
		if err != nil {
			return err
		}
		p.leave(LeftSelf)
		return nil
	})
}

func (s *Simulator) byName(id, name, base string, f func(m *meeting, name string) error) (Meeting, error) {
	name, err := checkName("name", name)
	if err != nil {
		return Meeting{}, err
	}
	return s.change(id, base, func(m *meeting, _ time.Time) error { return f(m, name) })
}

// End ends the meeting for everyone. Ending an ended meeting is not an error.
func (s *Simulator) End(id string) (Meeting, error) { return s.end(id, s.PublicURL()) }

func (s *Simulator) end(id, base string) (Meeting, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.lookupLocked(id)
	if err != nil {
		return Meeting{}, err
	}
	if !m.ended() {
		m.end(s.now())
		s.notifyLocked()
		s.log.Info("meeting ended", "meeting_id", id, "platform", m.spec.Platform)
	}
	return m.view(base), nil
}

// WaitParticipant waits until the newest participant named name in meeting
// id is in state, and returns it. It polls the clock every 50 ms besides
// waking on every change, so time-driven changes are seen too.
func (s *Simulator) WaitParticipant(ctx context.Context, id, name, state string) (Participant, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last Participant
	for {
		s.mu.Lock()
		m, err := s.lookupLocked(id)
		if err != nil {
			s.mu.Unlock()
			return Participant{}, err
		}
		p, found := m.view("").Find(name)
		changed := s.changed
		s.mu.Unlock()
		if found && p.State == state {
			return p, nil
		}
		last = p
		select {
		case <-ctx.Done():
			if !found {
				return Participant{}, fmt.Errorf("wait for %q to be %s in meeting %s: no such participant: %w", name, state, id, ctx.Err())
			}
			return last, fmt.Errorf("wait for %q to be %s in meeting %s: still %s: %w", name, state, id, last.State, ctx.Err())
		case <-changed:
		case <-tick.C:
		}
	}
}
