package sim

import (
	"net/http"
	"net/url"
	"strings"
)

// Wording of the Microsoft login pages (see README for sources).
const (
	msgEmailEmpty     = "Enter a valid email address, phone number, or Skype name."
	msgUnknownUser    = "We couldn't find an account with that username. Try another, or get a new Microsoft account."
	msgWrongPassword  = "Your account or password is incorrect. If you don't remember your password, reset it now."
	msgPasswordEmpty  = "Please enter your password."
	msgFlowExpired    = "Your sign-in session has expired. Enter your email to start again."
	msgCaptchaRefused = "The characters you entered didn't match. Try again."
)

// handleLoginStart is the entry: B/microsoft/login?ru=<return url>. A
// browser that already holds a valid session goes straight back to ru (SSO,
// not a password sign-in).
func (s *Simulator) handleLoginStart(w http.ResponseWriter, r *http.Request) {
	ru := s.returnURL(r, r.URL.Query().Get("ru"))
	s.mu.Lock()
	_, st := s.sessionLocked(r)
	s.mu.Unlock()
	if st == sessionValid {
		http.Redirect(w, r, ru, http.StatusFound)
		return
	}
	s.render(w, http.StatusOK, "ms-email", page{RU: ru})
}

// handleLoginEmail takes the email (loginfmt) and shows the password page.
func (s *Simulator) handleLoginEmail(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostFormValue("loginfmt"))
	ru := s.returnURL(r, r.PostFormValue("ru"))
	if email == "" {
		s.render(w, http.StatusOK, "ms-email", page{RU: ru, Error: msgEmailEmpty})
		return
	}
	s.mu.Lock()
	acct, ok := s.accounts[strings.ToLower(email)]
	if !ok {
		s.signInFailedLocked("unknown_user")
		s.mu.Unlock()
		s.render(w, http.StatusOK, "ms-email", page{RU: ru, Email: email, Error: msgUnknownUser})
		return
	}
	flow := s.newFlowLocked(strings.ToLower(email), ru)
	shown := acct.email
	s.mu.Unlock()
	s.render(w, http.StatusOK, "ms-password", page{Email: shown, Flow: flow})
}

// handleLoginPassword checks the password and applies the account's behaviour.
func (s *Simulator) handleLoginPassword(w http.ResponseWriter, r *http.Request) {
	pw := r.PostFormValue("passwd")
	s.mu.Lock()
	flowTok := r.PostFormValue("flowToken")
	f := s.flowLocked(flowTok)
	if f == nil {
		s.mu.Unlock()
		s.render(w, http.StatusOK, "ms-email", page{RU: s.returnURL(r, ""), Alert: msgFlowExpired})
		return
	}
	acct, ok := s.accounts[f.email]
	if !ok {
		delete(s.flows, flowTok)
		s.signInFailedLocked("unknown_user")
		s.mu.Unlock()
		s.render(w, http.StatusOK, "ms-email", page{RU: f.ru, Email: f.email, Error: msgUnknownUser})
		return
	}
	p := page{Email: acct.email, Flow: flowTok}
	var tmpl string
	switch {
	case acct.behavior == BehaviorLocked:
		delete(s.flows, flowTok)
		s.signInFailedLocked("locked")
		tmpl = "ms-locked"
	case pw == "":
		tmpl, p.Error = "ms-password", msgPasswordEmpty
	case !acct.passwordMatches(pw):
		s.signInFailedLocked("wrong_password")
		tmpl, p.Error = "ms-password", msgWrongPassword
	case acct.behavior == BehaviorMFA:
		delete(s.flows, flowTok)
		s.signInFailedLocked("mfa")
		tmpl, p.Number = "ms-mfa", randomFrom(digits, 2)
	case acct.behavior == BehaviorCaptcha:
		s.signInFailedLocked("captcha")
		tmpl = "ms-captcha"
	default:
		f.verified = true
		tmpl = "ms-kmsi"
	}
	s.mu.Unlock()
	s.render(w, http.StatusOK, tmpl, p)
}

// handleLoginCaptcha never lets anyone through: the captcha is unsolvable.
func (s *Simulator) handleLoginCaptcha(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	flowTok := r.PostFormValue("flowToken")
	f := s.flowLocked(flowTok)
	var email string
	if f != nil {
		email = f.email
	}
	s.mu.Unlock()
	if f == nil {
		s.render(w, http.StatusOK, "ms-email", page{RU: s.returnURL(r, ""), Alert: msgFlowExpired})
		return
	}
	s.render(w, http.StatusOK, "ms-captcha", page{Email: email, Flow: flowTok, Error: msgCaptchaRefused})
}

// handleLoginKMSI answers "Stay signed in?": it issues the session, sets the
// ESTSAUTH cookies and sends the browser back to ru. "No" gives a browser-session
// cookie only (as Microsoft does); the server-side expiry is the same.
func (s *Simulator) handleLoginKMSI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	flowTok := r.PostFormValue("flowToken")
	f := s.flowLocked(flowTok)
	if f == nil || !f.verified {
		s.mu.Unlock()
		s.render(w, http.StatusOK, "ms-email", page{RU: s.returnURL(r, ""), Alert: msgFlowExpired})
		return
	}
	delete(s.flows, flowTok)
	tok, exp := s.newSessionLocked(f.email)
	s.stats.MicrosoftLogins++
	s.metrics.signIns.WithLabelValues("ok").Inc()
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("microsoft sign-in", "outcome", "ok")

	persistent := r.PostFormValue("kmsi") != "No"
	c := &http.Cookie{Name: CookieESTSAuth, Value: tok, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
	if persistent {
		c.Expires = exp
		pc := *c
		pc.Name = CookieESTSAuthPersistent
		http.SetCookie(w, &pc)
	}
	http.SetCookie(w, c)
	http.Redirect(w, r, f.ru, http.StatusFound)
}

func (s *Simulator) signInFailedLocked(outcome string) {
	s.stats.MicrosoftLoginFailures++
	s.metrics.signIns.WithLabelValues(outcome).Inc()
	s.log.Info("microsoft sign-in", "outcome", outcome)
}

// returnURL makes ru absolute and keeps it on the simulator's own origin (no
// open redirect). Empty or foreign values land on the simulator's index page.
func (s *Simulator) returnURL(r *http.Request, ru string) string {
	base := s.baseURL(r)
	home := base + "/"
	if ru == "" {
		return home
	}
	u, err := url.Parse(ru)
	if err != nil {
		return home
	}
	if !u.IsAbs() {
		if !strings.HasPrefix(ru, "/") || strings.HasPrefix(ru, "//") || strings.HasPrefix(ru, `/\`) || u.Host != "" {
			return home
		}
		return base + ru
	}
	b, err := url.Parse(base)
	if err != nil || u.Scheme != b.Scheme || !(strings.EqualFold(u.Host, b.Host) || strings.EqualFold(u.Host, r.Host)) {
		return home
	}
	return u.String()
}
