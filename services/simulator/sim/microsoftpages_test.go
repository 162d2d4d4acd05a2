package sim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"

	"github.com/usherhq/usher/services/simulator/sim"
)

// signIn walks the login pages from the email field to the password page's
// submit, as a bot would.
func signIn(t *testing.T, p *rod.Page, email, password string) {
	t.Helper()
	input(t, el(t, p, `input[name="loginfmt"][type="email"]#i0116`), email)
	click(t, el(t, p, `input[type="submit"]#idSIButton9[value="Next"]`))
	input(t, el(t, p, `input[name="passwd"][type="password"]#i0118`), password)
	click(t, el(t, p, `input[type="submit"]#idSIButton9[value="Sign in"]`))
}

func cookies(t *testing.T, p *rod.Page, base string) map[string]*proto.NetworkCookie {
	t.Helper()
	cs, err := p.Cookies([]string{base + "/"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*proto.NetworkCookie{}
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

func TestMicrosoftLoginOKSetsSessionCookies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{SessionTTL: 2 * time.Hour})
	h.admin("POST", "/admin/microsoft/accounts",
		`{"email":"bot@contoso.test","password":"s3cret-pw","display_name":"Contoso Bot"}`, http.StatusCreated, nil)
	p := h.page()
	ru := h.url + "/"
	navigate(t, p, h.url+"/microsoft/login?ru="+url.QueryEscape(ru))
	if got := attr(t, el(t, p, "#i0116"), "placeholder"); got != "Email, phone, or Skype" {
		t.Fatalf("email placeholder %q", got)
	}
	signIn(t, p, "bot@contoso.test", "s3cret-pw")
	elText(t, p, `[role="heading"]`, "Stay signed in?")
	el(t, p, "#KmsiDescription")
	el(t, p, "#idBtn_Back")
	if h.stats().MicrosoftLogins != 0 {
		t.Fatal("a login was counted before the session was issued")
	}
	click(t, el(t, p, `#idSIButton9[value="Yes"]`))
	el(t, p, "#sim-signed-in") // the return page (ru) sees the session
	if got := p.MustInfo().URL; got != ru {
		t.Fatalf("redirected to %q, want ru %q", got, ru)
	}

	cs := cookies(t, p, h.url)
	for _, name := range []string{sim.CookieESTSAuth, sim.CookieESTSAuthPersistent} {
		c, ok := cs[name]
		if !ok || c.Value == "" {
			t.Fatalf("cookie %s missing; have %v", name, cs)
		}
		if !c.HTTPOnly || c.Path != "/" {
			t.Fatalf("cookie %s: http_only=%v path=%q, want HttpOnly and /", name, c.HTTPOnly, c.Path)
		}
		exp := time.Unix(int64(c.Expires), 0)
		if d := time.Until(exp); d < 110*time.Minute || d > 2*time.Hour+time.Minute {
			t.Fatalf("cookie %s expires in %s, want the session TTL (2h)", name, d)
		}
	}
	st := h.stats()
	if st.MicrosoftLogins != 1 || st.MicrosoftSessions != 1 || st.MicrosoftLoginFailures != 0 {
		t.Fatalf("stats %+v, want exactly one login and one session", st)
	}

	// A second visit to the login page with the session is single sign-on:
	// straight back to ru, not another password sign-in.
	navigate(t, p, h.url+"/microsoft/login?ru="+url.QueryEscape(ru))
	el(t, p, "#sim-signed-in")
	if got := h.stats().MicrosoftLogins; got != 1 {
		t.Fatalf("microsoft_logins %d after SSO, want 1", got)
	}
}

func TestMicrosoftLoginFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	for _, b := range []string{"ok", "mfa", "locked", "captcha"} {
		h.admin("POST", "/admin/microsoft/accounts",
			`{"email":"`+b+`@contoso.test","password":"pw","behavior":"`+b+`"}`, http.StatusCreated, nil)
	}
	cases := []struct {
		name, email, password string
		check                 func(t *testing.T, p *rod.Page)
	}{
		{"unknown user", "nobody@contoso.test", "", func(t *testing.T, p *rod.Page) {
			elText(t, p, "#usernameError", "We couldn't find an account with that username.")
			el(t, p, `input[name="loginfmt"].has-error`)
		}},
		{"wrong password", "ok@contoso.test", "nope", func(t *testing.T, p *rod.Page) {
			elText(t, p, "#passwordError", "Your account or password is incorrect.")
			el(t, p, "#i0118") // no lock-out: the bot may try again
		}},
		{"locked", "locked@contoso.test", "pw", func(t *testing.T, p *rod.Page) {
			elText(t, p, ".alert-error", "Your account has been locked. Contact your support person to unlock it, then try again.")
		}},
		{"mfa", "mfa@contoso.test", "pw", func(t *testing.T, p *rod.Page) {
			elText(t, p, `[role="heading"]`, "Approve sign in request")
			el(t, p, "#idDiv_SAOTCAS_Description")
			if n := text(t, el(t, p, "#idRichContext_DisplaySign")); len(n) != 2 {
				t.Fatalf("MFA number %q, want two digits", n)
			}
			if got := p.MustInfo().Title; got != "Approve sign in request" {
				t.Fatalf("title %q", got)
			}
		}},
		{"captcha", "captcha@contoso.test", "pw", func(t *testing.T, p *rod.Page) {
			elText(t, p, "#hipChallenge", "Enter the characters you see")
			click(t, el(t, p, "#idSIButton9")) // unsolvable: the challenge comes back
			elText(t, p, "#hipChallenge", "Enter the characters you see")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := h.page()
			navigate(t, p, h.url+"/microsoft/login")
			if c.password == "" {
				input(t, el(t, p, "#i0116"), c.email)
				click(t, el(t, p, "#idSIButton9"))
			} else {
				signIn(t, p, c.email, c.password)
			}
			c.check(t, p)
			if cs := cookies(t, p, h.url); cs[sim.CookieESTSAuth] != nil || cs[sim.CookieESTSAuthPersistent] != nil {
				t.Fatalf("session cookies set after %s", c.name)
			}
		})
	}
	st := h.stats()
	if st.MicrosoftLogins != 0 || st.MicrosoftLoginFailures != len(cases) {
		t.Fatalf("stats %+v, want 0 logins and %d failures", st, len(cases))
	}
}

func TestMicrosoftLoginKeepsReturnURLOnTheSimulator(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Config{})
	h.admin("POST", "/admin/microsoft/accounts", `{"email":"a@b.test","password":"pw"}`, http.StatusCreated, nil)
	p := h.page()
	navigate(t, p, h.url+"/microsoft/login?ru="+url.QueryEscape("https://evil.example/steal"))
	signIn(t, p, "a@b.test", "pw")
	click(t, el(t, p, `#idSIButton9[value="Yes"]`))
	el(t, p, "#sim-signed-in")
	if got := p.MustInfo().URL; !strings.HasPrefix(got, h.url+"/") {
		t.Fatalf("open redirect to %q", got)
	}
}
