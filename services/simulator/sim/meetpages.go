package sim

import (
	"net/http"
	"strings"
)

// handleMeet is B/meet/<abc-defg-hij>: the lobby ("Ask to join" or "Join now").
func (s *Simulator) handleMeet(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("code"))
	s.mu.Lock()
	m := s.meetingLocked(id, Meet)
	if m == nil {
		s.mu.Unlock()
		s.render(w, http.StatusNotFound, "meet-notfound", page{})
		return
	}
	p := page{
		MeetingID: id, JoinAPI: joinAPI(id), View: "prejoin",
		JoinButton: m.spec.Fault != FaultNoJoinButton, WaitingRoom: m.spec.WaitingRoom,
	}
	if m.ended() {
		p.View = "ended"
	}
	s.mu.Unlock()
	s.render(w, http.StatusOK, "meet", p)
}
