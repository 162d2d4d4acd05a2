package sim

import (
	"fmt"
	"net/http"
)

// The page API is what the pages' scripts call: join, poll (every 250 ms),
// leave, and a beacon when the page goes away. A participant's token is its
// page's capability; it never appears in the admin API.

// pageStatus is what a page renders.
type pageStatus struct {
	Token string `json:"token,omitempty"`
	// View is the page view: waiting, in_meeting, denied, removed, ended,
	// left, no_answer, or a refusal (auth_required, zak_invalid,
	// passcode_wrong, login_required, error).
	View         string            `json:"view"`
	InMeeting    int               `json:"in_meeting"`
	Participants []pageParticipant `json:"participants,omitempty"`
	LoginURL     string            `json:"login_url,omitempty"`
	Error        string            `json:"error,omitempty"`
}

type pageParticipant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Self bool   `json:"self"`
}

type joinBody struct {
	Name string `json:"name"`
	Pwd  string `json:"pwd"`
	Zak  string `json:"zak"`
	Obf  string `json:"obf"`
}

// view maps a participant's state to its page view.
func (p *participant) view() string {
	if p.state != StateLeft {
		return p.state
	}
	switch p.reason {
	case LeftMeetingEnded:
		return "ended"
	case LeftNoAnswer:
		return "no_answer"
	default:
		return "left"
	}
}

func (s *Simulator) statusLocked(p *participant) pageStatus {
	m := p.meeting
	st := pageStatus{View: p.view(), InMeeting: m.inMeeting()}
	if p.state == StateInMeeting {
		for _, o := range m.people {
			if o.state == StateInMeeting {
				st.Participants = append(st.Participants, pageParticipant{ID: o.publicID, Name: o.name, Self: o == p})
			}
		}
	}
	return st
}

// handleJoin is the join click: it checks identity and faults and puts the
// participant in the waiting room or the meeting.
func (s *Simulator) handleJoin(w http.ResponseWriter, r *http.Request) {
	var body joinBody
	if err := decodeBody(r, &body, false); err != nil {
		writeJSON(w, http.StatusBadRequest, pageStatus{View: "error", Error: err.Error()})
		return
	}
	code, st := s.join(r, r.PathValue("id"), body)
	writeJSON(w, code, st)
}

func (s *Simulator) join(r *http.Request, id string, body joinBody) (int, pageStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.lookupLocked(id)
	if err != nil {
		return http.StatusNotFound, pageStatus{View: "error", Error: err.Error()}
	}
	s.stats.Joins++
	platform := m.spec.Platform
	refuse := func(code int, view, msg string) (int, pageStatus) {
		s.metrics.joins.WithLabelValues(platform, "refused").Inc()
		return code, pageStatus{View: view, Error: msg}
	}
	if m.ended() {
		s.metrics.joins.WithLabelValues(platform, "ended").Inc()
		return http.StatusConflict, pageStatus{View: "ended", Error: "the meeting has ended"}
	}
	identity, name := IdentityAnonymous, body.Name
	switch platform {
	case Zoom:
		user, err := s.zoomIdentityLocked(body.Zak, body.Obf)
		if err != nil {
			s.zoomTokenRejectedLocked()
			return refuse(http.StatusForbidden, "zak_invalid", "zak: "+err.Error())
		}
		if user != nil {
			identity, name = user.ID, user.DisplayName
		} else if m.spec.AuthRequired {
			return refuse(http.StatusForbidden, "auth_required", "this meeting is for authorized attendees only")
		}
		if !zoomPasscodeOK(body.Pwd, m.zoomPwd) {
			return refuse(http.StatusForbidden, "passcode_wrong", "pwd: passcode wrong")
		}
	case Teams:
		acct, st := s.sessionLocked(r)
		if st == sessionInvalid || (m.spec.AuthRequired && st != sessionValid) {
			code, ps := refuse(http.StatusUnauthorized, "login_required", "sign in required")
			ps.LoginURL = s.teamsLoginURL(r, id)
			return code, ps
		}
		if st == sessionValid {
			identity, name = acct.email, acct.displayName
		}
	}
	name, err = checkName("name", name)
	if err != nil {
		return refuse(http.StatusBadRequest, "error", err.Error())
	}
	now := s.now()
	m.nextPID++
	p := &participant{
		meeting: m, publicID: fmt.Sprintf("p%d", m.nextPID), token: token(),
		name: name, identity: identity, state: StateInMeeting, waiting: now, lastSeen: now,
	}
	if m.spec.WaitingRoom {
		p.state = StateWaiting
	}
	m.people = append(m.people, p)
	s.byToken[p.token] = p
	if m.spec.Fault == FaultEndWhileJoining {
		m.end(now)
	}
	s.notifyLocked()
	outcome := p.state
	if m.ended() {
		outcome = "ended"
	}
	s.metrics.joins.WithLabelValues(platform, outcome).Inc()
	s.log.Info("participant joined", "meeting_id", id, "platform", platform, "outcome", outcome,
		"signed_in", identity != IdentityAnonymous)
	st := s.statusLocked(p)
	st.Token = p.token
	return http.StatusOK, st
}

// participantLocked finds a page's participant by token and records that its page is alive.
func (s *Simulator) participantLocked(tok string) *participant {
	p, ok := s.byToken[tok]
	if !ok {
		return nil
	}
	if p.present() {
		p.lastSeen = s.now()
	}
	if p.meeting.tick(s.now(), s.cfg.PresenceTimeout) {
		s.notifyLocked()
	}
	return p
}

// handleParticipantStatus is the page's poll.
func (s *Simulator) handleParticipantStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p := s.participantLocked(r.PathValue("token"))
	if p == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, pageStatus{View: "error", Error: "unknown participant"})
		return
	}
	st := s.statusLocked(p)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

// handleParticipantLeave is Leave / hang-up / Cancel on the page.
func (s *Simulator) handleParticipantLeave(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p := s.participantLocked(r.PathValue("token"))
	if p == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, pageStatus{View: "error", Error: "unknown participant"})
		return
	}
	if p.present() {
		p.leave(LeftSelf)
		s.notifyLocked()
		s.log.Info("participant left", "meeting_id", p.meeting.id, "platform", p.meeting.spec.Platform)
	}
	st := s.statusLocked(p)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

// handleParticipantGone is the page's pagehide beacon: the page went away
// while its participant was waiting or in the meeting.
func (s *Simulator) handleParticipantGone(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if p, ok := s.byToken[r.PathValue("token")]; ok && p.present() {
		p.leave(LeftDisconnected)
		s.notifyLocked()
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
