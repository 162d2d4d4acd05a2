package sim

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/usherhq/usher/shared/secret"
)

// Microsoft account behaviours: what happens after the right password.
const (
	// BehaviorOK signs in: "Stay signed in?", then the session cookies.
	BehaviorOK = "ok"
	// BehaviorMFA stops at "Approve sign in request".
	BehaviorMFA = "mfa"
	// BehaviorLocked shows "Your account has been locked…" (whatever the password).
	BehaviorLocked = "locked"
	// BehaviorCaptcha stops at an unsolvable captcha (#hipChallenge; invented).
	BehaviorCaptcha = "captcha"
)

// Session cookies set on the simulator's host after sign-in.
const (
	CookieESTSAuth           = "ESTSAUTH"
	CookieESTSAuthPersistent = "ESTSAUTHPERSISTENT"
)

// MicrosoftAccount is a bot (or human) account the login pages accept.
type MicrosoftAccount struct {
	Email       string
	Password    secret.String
	DisplayName string
	// Behavior is BehaviorOK (default), BehaviorMFA, BehaviorLocked or BehaviorCaptcha.
	Behavior string
}

type msAccount struct {
	email       string // as given; the map key is lower-case
	password    secret.String
	displayName string
	behavior    string
}

type msSession struct {
	email   string // lower-case
	expires time.Time
}

// signInFlow carries one sign-in from the email page to "Stay signed in?"
// (the real pages' flowToken).
type signInFlow struct {
	email    string // lower-case
	ru       string
	verified bool // the password was right: only the KMSI answer is missing
	created  time.Time
}

// flowTTL bounds how long a half-finished sign-in stays usable.
const flowTTL = 15 * time.Minute

// PutMicrosoftAccount creates or replaces an account. It reports whether the
// account is new. Replacing keeps the account's sessions.
func (s *Simulator) PutMicrosoftAccount(a MicrosoftAccount) (bool, error) {
	_, created, err := s.putMicrosoftAccount(a)
	return created, err
}

func (s *Simulator) putMicrosoftAccount(a MicrosoftAccount) (msAccount, bool, error) {
	email := strings.TrimSpace(a.Email)
	if email == "" {
		return msAccount{}, false, invalidf("email is required")
	}
	if at := strings.Index(email, "@"); at <= 0 || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n") {
		return msAccount{}, false, invalidf("email must be an email address, got %q", email)
	}
	if a.Password.Empty() {
		return msAccount{}, false, invalidf("password is required")
	}
	display := strings.TrimSpace(a.DisplayName)
	if display == "" {
		display = email
	}
	if len([]rune(display)) > maxNameLen {
		return msAccount{}, false, invalidf("display_name must be at most %d characters", maxNameLen)
	}
	switch a.Behavior {
	case "":
		a.Behavior = BehaviorOK
	case BehaviorOK, BehaviorMFA, BehaviorLocked, BehaviorCaptcha:
	default:
		return msAccount{}, false, invalidf("behavior must be ok, mfa, locked or captcha, got %q", a.Behavior)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(email)
	_, exists := s.accounts[key]
	acct := &msAccount{email: email, password: a.Password, displayName: display, behavior: a.Behavior}
	s.accounts[key] = acct
	return *acct, !exists, nil
}

// ExpireMicrosoftSessions invalidates every session of the account (the
// "session expired" fault): the next Teams page load bounces to login. It
// returns how many sessions it ended.
func (s *Simulator) ExpireMicrosoftSessions(email string) (int, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return 0, invalidf("email is required")
	}
	key := strings.ToLower(email)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[key]; !ok {
		return 0, notFoundf("no Microsoft account %q", email)
	}
	n := 0
	for tok, ss := range s.sessions {
		if ss.email == key {
			delete(s.sessions, tok)
			n++
		}
	}
	s.notifyLocked()
	return n, nil
}

// session states of a request.
const (
	sessionNone    = iota // no session cookie
	sessionValid          // a cookie names a live session of an existing account
	sessionInvalid        // cookies present, but expired, ended or unknown
)

// sessionLocked reads the request's ESTSAUTH cookies.
func (s *Simulator) sessionLocked(r *http.Request) (*msAccount, int) {
	state := sessionNone
	now := s.now()
	for _, name := range []string{CookieESTSAuthPersistent, CookieESTSAuth} {
		c, err := r.Cookie(name)
		if err != nil || c.Value == "" {
			continue
		}
		state = sessionInvalid
		ss, ok := s.sessions[c.Value]
		if !ok {
			continue
		}
		if !now.Before(ss.expires) {
			delete(s.sessions, c.Value)
			continue
		}
		if acct, ok := s.accounts[ss.email]; ok {
			return acct, sessionValid
		}
	}
	return nil, state
}

// passwordMatches compares in constant time.
func (a *msAccount) passwordMatches(pw string) bool {
	return subtle.ConstantTimeCompare([]byte(a.password.Reveal()), []byte(pw)) == 1
}

// newSessionLocked issues a session for the account.
func (s *Simulator) newSessionLocked(email string) (string, time.Time) {
	now := s.now()
	for tok, ss := range s.sessions { // sweep expired sessions
		if !now.Before(ss.expires) {
			delete(s.sessions, tok)
		}
	}
	tok := token()
	exp := now.Add(s.cfg.SessionTTL)
	s.sessions[tok] = &msSession{email: email, expires: exp}
	return tok, exp
}

// newFlowLocked starts a sign-in flow.
func (s *Simulator) newFlowLocked(email, ru string) string {
	now := s.now()
	for tok, f := range s.flows {
		if now.Sub(f.created) > flowTTL {
			delete(s.flows, tok)
		}
	}
	tok := token()
	s.flows[tok] = &signInFlow{email: email, ru: ru, created: now}
	return tok
}

// flowLocked returns a live flow, or nil.
func (s *Simulator) flowLocked(tok string) *signInFlow {
	f, ok := s.flows[tok]
	if !ok {
		return nil
	}
	if s.now().Sub(f.created) > flowTTL {
		delete(s.flows, tok)
		return nil
	}
	return f
}
