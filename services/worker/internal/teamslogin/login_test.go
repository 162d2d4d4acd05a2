package teamslogin

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/secret"
)

// engine is the package's one Chromium (TestMain).
var engine *browser.Engine

func TestMain(m *testing.M) {
	os.Exit(browsertest.Main(m, &engine, func() (*browser.Engine, error) { return browsertest.Start(8) }))
}

type fixture struct {
	sim   *sim.Simulator
	url   string
	login *Login
	reg   *prometheus.Registry
	logs  *logging.Buffer
	js    *natstest.Server
}

func testConfig() Config {
	return Config{URL: "https://login.example.invalid/", Timeout: 30 * time.Second, StepTimeout: 10 * time.Second, ScreenshotMaxBytes: 1 << 20}
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	s := sim.New(sim.Config{})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if err := s.SetPublicURL(srv.URL); err != nil {
		t.Fatal(err)
	}
	js := natstest.New(t)
	topo := js.Topology()
	logs := &logging.Buffer{}
	reg := prometheus.NewRegistry()
	l := New(cfg, engine, topo.Screenshots, logging.New(logs, logging.Config{Level: "debug", Format: "json"}, "worker"), reg)
	return &fixture{sim: s, url: srv.URL, login: l, reg: reg, logs: logs, js: js}
}

func (f *fixture) account(t *testing.T, email, password, behavior string) {
	t.Helper()
	if _, err := f.sim.PutMicrosoftAccount(sim.MicrosoftAccount{Email: email, Password: secret.String(password), DisplayName: "Usher Bot", Behavior: behavior}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) entry() string {
	return testConfig().EntryURL(f.url+"/teams/meet/123?p=x", true)
}

func creds(email, password string) Credentials {
	return Credentials{Project: "acme", AccountID: "acct_0123456789abcdef", Email: email, Password: secret.String(password), ScreenshotName: "acme.acct_0123456789abcdef"}
}

func TestLoginSignsInAndReturnsTheSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	const pw = "Correct-Horse-42"
	f.account(t, "bot@contoso.com", pw, sim.BehaviorOK)

	cookies, err := f.login.Login(context.Background(), f.entry(), creds("bot@contoso.com", pw))
	if err != nil {
		t.Fatal(err)
	}
	var auth, persistent bool
	for _, c := range cookies {
		switch c.Name {
		case sim.CookieESTSAuth:
			auth = !c.Value.Empty() && c.HTTPOnly
		case sim.CookieESTSAuthPersistent:
			persistent = !c.Value.Empty() && time.Until(c.Expires) > 23*time.Hour
		}
	}
	if !auth || !persistent {
		t.Fatalf("cookies %+v lack the ESTSAUTH session (persistent: Stay signed in = Yes)", cookies)
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 1 || st.MicrosoftLoginFailures != 0 {
		t.Fatalf("simulator stats = %+v", st)
	}
	if got := testutil.ToFloat64(f.login.m.logins.WithLabelValues("ok")); got != 1 {
		t.Fatalf("logins{ok} = %v", got)
	}
	if strings.Contains(f.logs.String(), pw) || strings.Contains(f.logs.String(), cookies[0].Value.Reveal()) {
		t.Fatal("a secret reached the logs")
	}
}

func TestLoginFailuresAreClassifiedWithAScreenshot(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	const pw = "Right-Password-7"
	f.account(t, "ok@contoso.com", pw, sim.BehaviorOK)
	f.account(t, "mfa@contoso.com", pw, sim.BehaviorMFA)
	f.account(t, "locked@contoso.com", pw, sim.BehaviorLocked)
	f.account(t, "captcha@contoso.com", pw, sim.BehaviorCaptcha)
	cases := []struct {
		name, email, password string
		kind                  Kind
		step, subCode         string
	}{
		{"wrong password", "ok@contoso.com", "Wrong-Password-9", KindInvalidCredentials, "stay_signed_in", botstate.SubTeamsInvalidCredentials},
		{"unknown user", "nobody@contoso.com", pw, KindInvalidCredentials, "password", botstate.SubTeamsInvalidCredentials},
		{"mfa", "mfa@contoso.com", pw, KindMFARequired, "stay_signed_in", botstate.SubTeamsMFARequired},
		{"locked", "locked@contoso.com", pw, KindLocked, "stay_signed_in", botstate.SubTeamsAccountLocked},
		{"captcha", "captcha@contoso.com", pw, KindCaptcha, "stay_signed_in", botstate.SubBlockedByCaptcha},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c0 := creds(c.email, c.password)
			c0.ScreenshotName = "acme." + strings.ReplaceAll(c.name, " ", "_")
			_, err := f.login.Login(context.Background(), f.entry(), c0)
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if le.Kind != c.kind || le.Step != c.step || le.SubCode() != c.subCode || le.Transient() || le.SharedFailure() != c.subCode {
				t.Fatalf("error = %+v (sub_code %s), want %s at %s (%s)", le, le.SubCode(), c.kind, c.step, c.subCode)
			}
			if strings.Contains(err.Error(), c.password) {
				t.Fatalf("error %q carries the password", err)
			}
			if le.Screenshot != c0.ScreenshotName {
				t.Fatalf("screenshot = %q", le.Screenshot)
			}
			obj, err := f.js.Topology().Screenshots.Get(context.Background(), le.Screenshot)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := obj.Info()
			img, _ := io.ReadAll(obj)
			_ = obj.Close()
			if _, err := jpeg.Decode(bytes.NewReader(img)); err != nil || len(img) > testConfig().ScreenshotMaxBytes {
				t.Fatalf("screenshot is not a JPEG within the limit (%d bytes): %v", len(img), err)
			}
			if info.Metadata["content_type"] != "image/jpeg" || info.Metadata["sub_code"] != c.subCode {
				t.Fatalf("screenshot metadata = %v", info.Metadata)
			}
		})
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 0 {
		t.Fatalf("a failing case signed in: %+v", st)
	}
	if got := testutil.ToFloat64(f.login.m.logins.WithLabelValues(string(KindInvalidCredentials))); got != 2 {
		t.Fatalf("logins{invalid_credentials} = %v", got)
	}
	if strings.Contains(f.logs.String(), pw) || strings.Contains(f.logs.String(), "Wrong-Password-9") {
		t.Fatal("a password reached the logs")
	}
}

func TestPageTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.StepTimeout = time.Second
	cfg.Timeout = 5 * time.Second
	f := newFixture(t, cfg)
	// A login page that never finishes loading its form.
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `<!DOCTYPE html><html><body><p>Loading…</p></body></html>`)
	}))
	t.Cleanup(stuck.Close)

	start := time.Now()
	_, err := f.login.Login(context.Background(), stuck.URL, creds("bot@contoso.com", "pw-timeout-1"))
	var le *Error
	if !errors.As(err, &le) || le.Kind != KindTimeout || !le.Transient() || le.SharedFailure() != "" || le.SubCode() != botstate.SubTeamsLoginFailed {
		t.Fatalf("err = %v", err)
	}
	if le.Step != "email" || le.Screenshot == "" {
		t.Fatalf("timeout error = %+v", le)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("a 1s step timeout took %s", d)
	}
	if got := testutil.ToFloat64(f.login.m.logins.WithLabelValues("timeout")); got != 1 {
		t.Fatalf("logins{timeout} = %v", got)
	}
}

func TestCanceledLoginReturnsTheContextError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `<!DOCTYPE html><html><body>…</body></html>`)
	}))
	t.Cleanup(stuck.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := f.login.Login(ctx, stuck.URL, creds("bot@contoso.com", "pw"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if got := testutil.ToFloat64(f.login.m.logins.WithLabelValues("canceled")); got != 1 {
		t.Fatalf("logins{canceled} = %v", got)
	}
}

func TestScreenshotBlanksThePasswordFirst(t *testing.T) {
	t.Parallel()
	// A page showing the typed password in clear, as a page could after a
	// failed step.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `<!DOCTYPE html><html><body>
<input name="passwd" type="text" id="visible" value="hunter2-typed" style="font-size:40px">
<input type="password" id="hidden" value="hunter2-hidden">
<div id="idDiv_SAOTCAS_Description">Approve sign in request</div></body></html>`)
	}))
	t.Cleanup(page.Close)
	tab, err := engine.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	p := tab.Page().Timeout(10 * time.Second)
	if err := p.Navigate(page.URL); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLoad(); err != nil {
		t.Fatal(err)
	}
	img, err := capture(p, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(img)); err != nil {
		t.Fatalf("not a JPEG: %v", err)
	}
	res, err := p.Eval(`() => document.getElementById('visible').value + '|' + document.getElementById('hidden').value + '|' + document.body.innerHTML.includes('hunter2')`)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Value.Str(); got != "||false" {
		t.Fatalf("after capture the password fields hold %q", got)
	}
	if _, err := capture(p, 1000); !errors.Is(err, errScreenshotTooLarge) {
		t.Fatalf("capture over the limit: %v", err)
	}
}

func TestConfigValidateAndEntryURL(t *testing.T) {
	t.Parallel()
	good := testConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.URL = "ftp://x"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "USHER_TEAMS_LOGIN_URL") {
		t.Fatalf("Validate = %v", err)
	}
	bad = good
	bad.Timeout = time.Second
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "USHER_TEAMS_LOGIN_TIMEOUT") {
		t.Fatalf("Validate = %v", err)
	}
	if got := good.EntryURL("http://127.0.0.1:8090/teams/meet/1?p=2", true); got != "http://127.0.0.1:8090/microsoft/login?ru=http%3A%2F%2F127.0.0.1%3A8090%2F" {
		t.Fatalf("simulated entry = %s", got)
	}
	if got := good.EntryURL("https://teams.microsoft.com/meet/1?p=2", false); got != good.URL {
		t.Fatalf("real entry = %s", got)
	}
}
