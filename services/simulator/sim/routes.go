package sim

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
)

// templateFS holds the page templates (a package variable because embed requires one).
//
//go:embed templates/*.html
var templateFS embed.FS

// parsePages parses every page template. Embedded files fail to parse only
// when they are broken, which every page test would catch.
func parsePages() (*template.Template, error) {
	return template.ParseFS(templateFS, "templates/*.html")
}

func (s *Simulator) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)

	// Zoom.
	mux.HandleFunc("GET /zoom/j/{id}", s.handleZoomLauncher)
	mux.HandleFunc("GET /zoom/wc/{id}/join", s.handleZoomWebClient)
	mux.HandleFunc("GET /zoom/v2/users/{userId}/token", s.handleZoomToken)

	// Microsoft login.
	mux.HandleFunc("GET /microsoft/login", s.handleLoginStart)
	mux.HandleFunc("POST /microsoft/login", s.handleLoginEmail)
	mux.HandleFunc("POST /microsoft/login/password", s.handleLoginPassword)
	mux.HandleFunc("POST /microsoft/login/captcha", s.handleLoginCaptcha)
	mux.HandleFunc("POST /microsoft/login/kmsi", s.handleLoginKMSI)

	// Teams.
	mux.HandleFunc("GET /teams/l/meetup-join/{thread}/{message}", s.handleTeamsThreadLink)
	mux.HandleFunc("GET /teams/meet/{number}", s.handleTeamsShortLink)
	mux.HandleFunc("GET /teams/prejoin/{id}", s.handleTeamsPrejoin)

	// Meet.
	mux.HandleFunc("GET /meet/{code}", s.handleMeet)

	// Page API (the pages' scripts).
	mux.HandleFunc("POST /sim/api/meetings/{id}/join", s.handleJoin)
	mux.HandleFunc("GET /sim/api/participants/{token}", s.handleParticipantStatus)
	mux.HandleFunc("POST /sim/api/participants/{token}/leave", s.handleParticipantLeave)
	mux.HandleFunc("POST /sim/api/participants/{token}/gone", s.handleParticipantGone)

	// Admin API.
	mux.HandleFunc("POST /admin/meetings", s.handleCreateMeeting)
	mux.HandleFunc("GET /admin/meetings", s.handleListMeetings)
	mux.HandleFunc("GET /admin/meetings/{id}", s.handleGetMeeting)
	mux.HandleFunc("POST /admin/meetings/{id}/admit", s.nameAction(s.admit))
	mux.HandleFunc("POST /admin/meetings/{id}/deny", s.nameAction(s.deny))
	mux.HandleFunc("POST /admin/meetings/{id}/remove", s.nameAction(s.remove))
	mux.HandleFunc("POST /admin/meetings/{id}/participants", s.nameAction(s.addParticipant))
	mux.HandleFunc("POST /admin/meetings/{id}/participants/leave", s.nameAction(s.participantLeaves))
	mux.HandleFunc("POST /admin/meetings/{id}/end", s.handleEnd)
	mux.HandleFunc("POST /admin/microsoft/accounts", s.handlePutAccount)
	mux.HandleFunc("POST /admin/microsoft/sessions/expire", s.handleExpireSessions)
	mux.HandleFunc("POST /admin/zoom/users", s.handlePutZoomUser)
	mux.HandleFunc("GET /admin/stats", s.handleStats)
	mux.HandleFunc("POST /admin/reset", s.handleReset)
	mux.HandleFunc("/admin/", s.handleAdminNotFound)
	return mux
}

// render writes a page. Pages are never cached, and never send a Referer
// (Zoom pages carry the ZAK in their URL).
func (s *Simulator) render(w http.ResponseWriter, status int, name string, data any) {
	if s.pagesErr != nil {
		s.log.Error("parse page templates", "err", s.pagesErr)
		http.Error(w, "simulator page templates are broken", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "simulator page error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// page is the data every page template reads; each page uses a few fields.
type page struct {
	MeetingID    string
	View         string // the view rendered in #app: prejoin, ended, auth_required, zak_invalid
	JoinAPI      string
	NextURL      string
	Name         string
	SignedIn     bool
	JoinButton   bool
	WaitingRoom  bool
	NeedPasscode bool
	Email        string
	RU           string
	Flow         string
	Number       string
	Error        string
	Alert        string
}

func (s *Simulator) handleIndex(w http.ResponseWriter, r *http.Request) {
	var p page
	s.mu.Lock()
	if acct, st := s.sessionLocked(r); st == sessionValid {
		p.Email, p.Name = acct.email, acct.displayName
	}
	s.mu.Unlock()
	s.render(w, http.StatusOK, "index", p)
}
