package sim

import (
	"crypto/subtle"
	"net/http"
)

// meetingLocked finds an existing meeting of the platform (applying its
// time-driven changes), or nil.
func (s *Simulator) meetingLocked(id, platform string) *meeting {
	m, err := s.lookupLocked(id)
	if err != nil || m.spec.Platform != platform {
		return nil
	}
	return m
}

// handleZoomLauncher is the meeting link B/zoom/j/<id>?pwd=…: Zoom's
// launcher, whose "Join from your browser" link opens the web client.
func (s *Simulator) handleZoomLauncher(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	m := s.meetingLocked(id, Zoom)
	s.mu.Unlock()
	if m == nil {
		s.render(w, http.StatusNotFound, "zoom-error", page{})
		return
	}
	next := "/zoom/wc/" + id + "/join"
	if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	s.render(w, http.StatusOK, "zoom-launcher", page{MeetingID: id, NextURL: next})
}

// handleZoomWebClient is B/zoom/wc/<id>/join?pwd=…[&zak=…][&obf=…]: the
// pre-join page, or the page that refuses this browser.
func (s *Simulator) handleZoomWebClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	s.mu.Lock()
	m := s.meetingLocked(id, Zoom)
	if m == nil {
		s.mu.Unlock()
		s.render(w, http.StatusNotFound, "zoom-error", page{})
		return
	}
	p := page{MeetingID: id, JoinAPI: joinAPI(id), View: "prejoin", JoinButton: m.spec.Fault != FaultNoJoinButton}
	if m.ended() {
		p.View = "ended"
	} else {
		user, err := s.zoomIdentityLocked(q.Get("zak"), q.Get("obf"))
		switch {
		case err != nil:
			s.zoomTokenRejectedLocked()
			p.View = "zak_invalid"
		case user == nil && m.spec.AuthRequired:
			p.View = "auth_required"
		default:
			if user != nil {
				p.Name = user.DisplayName
			}
			p.NeedPasscode = !zoomPasscodeOK(q.Get("pwd"), m.zoomPwd)
		}
	}
	s.mu.Unlock()
	s.render(w, http.StatusOK, "zoom-wc", p)
}

func joinAPI(id string) string { return "/sim/api/meetings/" + id + "/join" }

// zoomIdentityLocked validates the tokens a web-client URL carries. It
// returns the signed-in user (nil when no token was given) or the token's error.
func (s *Simulator) zoomIdentityLocked(zak, obf string) (*zoomUser, error) {
	var user *zoomUser
	if obf != "" {
		u, err := s.zoomTokenUserLocked(obf, TokenOnBehalf)
		if err != nil {
			return nil, err
		}
		user = u
	}
	if zak != "" {
		u, err := s.zoomTokenUserLocked(zak, TokenZAK)
		if err != nil {
			return nil, err
		}
		user = u
	}
	return user, nil
}

func (s *Simulator) zoomTokenRejectedLocked() {
	s.stats.ZAKRejections++
	s.metrics.zoomTokens.WithLabelValues("rejected").Inc()
	s.log.Info("zoom token rejected")
}

func zoomPasscodeOK(given, want string) bool {
	return subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}
