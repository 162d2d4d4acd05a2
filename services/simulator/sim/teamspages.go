package sim

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// handleTeamsThreadLink is B/teams/l/meetup-join/19%3ameeting_<id>%40thread.v2/<message>?context=…
func (s *Simulator) handleTeamsThreadLink(w http.ResponseWriter, r *http.Request) {
	thread := r.PathValue("thread") // unescaped by the mux: 19:meeting_<id>@thread.v2
	id, ok := strings.CutPrefix(thread, "19:meeting_")
	if ok {
		id, ok = strings.CutSuffix(id, "@thread.v2")
	}
	if !ok {
		s.render(w, http.StatusNotFound, "teams-notfound", page{})
		return
	}
	s.teamsLauncher(w, id)
}

// handleTeamsShortLink is B/teams/meet/<number>?p=<passcode>.
func (s *Simulator) handleTeamsShortLink(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	id, ok := s.teamsNums[r.PathValue("number")]
	var pass string
	if m, found := s.meetings[id]; ok && found {
		pass = m.teamsPass
	}
	s.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("p")), []byte(pass)) != 1 {
		s.render(w, http.StatusNotFound, "teams-notfound", page{})
		return
	}
	s.teamsLauncher(w, id)
}

// teamsLauncher shows "Continue on this browser", which leads to the pre-join page.
func (s *Simulator) teamsLauncher(w http.ResponseWriter, id string) {
	s.mu.Lock()
	m := s.meetingLocked(id, Teams)
	s.mu.Unlock()
	if m == nil {
		s.render(w, http.StatusNotFound, "teams-notfound", page{})
		return
	}
	s.render(w, http.StatusOK, "teams-launcher", page{MeetingID: id, NextURL: "/teams/prejoin/" + id})
}

// handleTeamsPrejoin is the pre-join page. A browser with a stale session
// (expired, ended, unknown cookies), or an org-only meeting without a valid
// session, bounces to the Microsoft login with ru = this page.
func (s *Simulator) handleTeamsPrejoin(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	m := s.meetingLocked(id, Teams)
	if m == nil {
		s.mu.Unlock()
		s.render(w, http.StatusNotFound, "teams-notfound", page{})
		return
	}
	acct, st := s.sessionLocked(r)
	if st == sessionInvalid || (m.spec.AuthRequired && st != sessionValid) {
		s.mu.Unlock()
		http.Redirect(w, r, s.teamsLoginURL(r, id), http.StatusFound)
		return
	}
	p := page{MeetingID: id, JoinAPI: joinAPI(id), View: "prejoin", JoinButton: m.spec.Fault != FaultNoJoinButton}
	if st == sessionValid {
		p.SignedIn, p.Name = true, acct.displayName
	}
	if m.ended() {
		p.View = "ended"
	}
	s.mu.Unlock()
	s.render(w, http.StatusOK, "teams-prejoin", p)
}

// teamsLoginURL is the sign-in bounce: B/microsoft/login?ru=<B/teams/prejoin/<id>>.
func (s *Simulator) teamsLoginURL(r *http.Request, id string) string {
	base := s.baseURL(r)
	return base + "/microsoft/login?ru=" + url.QueryEscape(base+"/teams/prejoin/"+id)
}
