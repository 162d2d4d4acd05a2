package sim

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// Zoom token kinds the token endpoint mints (GET /zoom/v2/users/{userId}/token?type=…).
const (
	// TokenZAK is Zoom's access key: joining with it makes the participant that user.
	TokenZAK = "zak"
	// TokenOnBehalf is an OBF token (onbehalf), accepted by the web client as &obf=.
	TokenOnBehalf = "onbehalf"
)

// Token validation errors.
var (
	// ErrTokenInvalid: the token was never minted (or the simulator was reset).
	ErrTokenInvalid = errors.New("zoom token invalid")
	// ErrTokenExpired: the token was minted but its time is up.
	ErrTokenExpired = errors.New("zoom token expired")
)

// ZoomUser is a Zoom account tokens are minted for.
type ZoomUser struct {
	// ID is the Zoom user id (what the token endpoint's {userId} names).
	ID string `json:"id"`
	// Email may also be used as {userId}.
	Email string `json:"email,omitempty"`
	// DisplayName is the name a ZAK join shows; default the id.
	DisplayName string `json:"display_name"`
}

type zoomUser = ZoomUser

type zoomToken struct {
	userID  string
	kind    string
	expires time.Time
}

// PutZoomUser creates or replaces a Zoom user. It reports whether the user is new.
func (s *Simulator) PutZoomUser(u ZoomUser) (bool, error) {
	_, created, err := s.putZoomUser(u)
	return created, err
}

func (s *Simulator) putZoomUser(u ZoomUser) (ZoomUser, bool, error) {
	u.ID = strings.TrimSpace(u.ID)
	u.Email = strings.TrimSpace(u.Email)
	u.DisplayName = strings.TrimSpace(u.DisplayName)
	if u.ID == "" {
		return ZoomUser{}, false, invalidf("id is required")
	}
	if len(u.ID) > 128 || strings.ContainsAny(u.ID, "/?#") {
		return ZoomUser{}, false, invalidf("id must be at most 128 characters without / ? #")
	}
	if u.Email != "" && !strings.Contains(u.Email, "@") {
		return ZoomUser{}, false, invalidf("email must be an email address, got %q", u.Email)
	}
	if len([]rune(u.DisplayName)) > maxNameLen {
		return ZoomUser{}, false, invalidf("display_name must be at most %d characters", maxNameLen)
	}
	if u.DisplayName == "" {
		u.DisplayName = u.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, exists := s.zoomUsers[u.ID]
	s.zoomUsers[u.ID] = &u
	return u, !exists, nil
}

// resolveZoomUserLocked finds a user by id or email, or makes one whose
// display name is the id (any {userId} can mint, as in the brief).
func (s *Simulator) resolveZoomUserLocked(userID string) *zoomUser {
	if u, ok := s.zoomUsers[userID]; ok {
		return u
	}
	for _, u := range s.zoomUsers {
		if u.Email != "" && strings.EqualFold(u.Email, userID) {
			return u
		}
	}
	u := &zoomUser{ID: userID, DisplayName: userID}
	s.zoomUsers[userID] = u
	return u
}

// MintZoomToken mints a token of kind (TokenZAK or TokenOnBehalf) for the
// user, valid for Config.ZAKTTL.
func (s *Simulator) MintZoomToken(userID, kind string) (string, error) {
	userID = strings.TrimSpace(userID)
	if userID == "" {
		return "", invalidf("userId is required")
	}
	if kind != TokenZAK && kind != TokenOnBehalf {
		return "", invalidf("type must be zak or onbehalf, got %q", kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for t, zt := range s.zoomToks { // sweep: keeps the map bounded by the mint rate × TTL
		if !now.Before(zt.expires) {
			delete(s.zoomToks, t)
		}
	}
	u := s.resolveZoomUserLocked(userID)
	tok := token()
	s.zoomToks[tok] = &zoomToken{userID: u.ID, kind: kind, expires: now.Add(s.cfg.ZAKTTL)}
	s.stats.ZAKsMinted++
	s.metrics.zoomTokens.WithLabelValues("minted").Inc()
	return tok, nil
}

// ZAKUser returns the user a ZAK was minted for, or ErrTokenInvalid / ErrTokenExpired.
func (s *Simulator) ZAKUser(tok string) (ZoomUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.zoomTokenUserLocked(tok, TokenZAK)
	if err != nil {
		return ZoomUser{}, err
	}
	return *u, nil
}

func (s *Simulator) zoomTokenUserLocked(tok, kind string) (*zoomUser, error) {
	zt, ok := s.zoomToks[tok]
	if !ok || zt.kind != kind {
		return nil, ErrTokenInvalid
	}
	if !s.now().Before(zt.expires) {
		return nil, ErrTokenExpired
	}
	u, ok := s.zoomUsers[zt.userID]
	if !ok {
		return nil, ErrTokenInvalid
	}
	return u, nil
}

// handleZoomToken is Zoom's GET /v2/users/{userId}/token: any Bearer token
// is accepted as the API credential; errors have Zoom's {"code","message"}
// shape plus "error", like the admin API.
func (s *Simulator) handleZoomToken(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	bearer, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(bearer) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="zoom"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"code": 124, "message": "Invalid access token.",
			"error": "Authorization: Bearer <access token> is required",
		})
		return
	}
	kind := r.URL.Query().Get("type")
	tok, err := s.MintZoomToken(r.PathValue("userId"), kind)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 300, "message": err.Error(), "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}
