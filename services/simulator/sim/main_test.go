package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/cdp"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/proto"
	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/simulator/sim"
)

// browser is the package's one Chromium; each test gets an incognito context.
var browser *rod.Browser

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	bin := os.Getenv("USHER_CHROMIUM_BIN")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	l := launcher.New().Bin(bin).Headless(true).Leakless(false).
		Set("lang", "en-US").Set("disable-gpu").Set("no-first-run").Set("disable-background-networking")
	if os.Geteuid() == 0 {
		l = l.NoSandbox(true)
	}
	u, err := l.Launch()
	if err != nil {
		fmt.Fprintf(os.Stderr, "launch chromium %s (set USHER_CHROMIUM_BIN): %v\n", bin, err)
		return 1
	}
	browser = rod.New().ControlURL(u)
	if err := browser.Connect(); err != nil {
		l.Kill()
		fmt.Fprintf(os.Stderr, "connect to chromium: %v\n", err)
		return 1
	}
	code := m.Run()
	_ = browser.Close()
	l.Kill()
	l.Cleanup()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreCurrent()); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			return 1
		}
	}
	return code
}

// harness is one simulator on an httptest server.
type harness struct {
	t   testing.TB
	sim *sim.Simulator
	url string
}

func newHarness(t testing.TB, cfg sim.Config, opts ...sim.Option) *harness {
	t.Helper()
	s := sim.New(cfg, opts...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if err := s.SetPublicURL(srv.URL); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, sim: s, url: srv.URL}
}

// call sends a request to the simulator and returns the status and body.
func (h *harness) call(method, path, body string, header ...string) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// admin calls the admin API, checks the status and decodes the answer into out (when non-nil).
func (h *harness) admin(method, path, body string, want int, out any) {
	h.t.Helper()
	code, b := h.call(method, path, body)
	if code != want {
		h.t.Fatalf("%s %s %s: status %d, want %d: %s", method, path, body, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// create creates a meeting through the admin API.
func (h *harness) create(spec string) sim.Meeting {
	h.t.Helper()
	var m sim.Meeting
	h.admin("POST", "/admin/meetings", spec, http.StatusCreated, &m)
	return m
}

// meeting reads a meeting through the admin API.
func (h *harness) meeting(id string) sim.Meeting {
	h.t.Helper()
	var m sim.Meeting
	h.admin("GET", "/admin/meetings/"+id, "", http.StatusOK, &m)
	return m
}

func (h *harness) stats() sim.Stats {
	h.t.Helper()
	var st sim.Stats
	h.admin("GET", "/admin/stats", "", http.StatusOK, &st)
	return st
}

// waitParticipant waits (waitTimeout at most) for name to be in state in the meeting.
func (h *harness) waitParticipant(id, name, state string) sim.Participant {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), waitTimeout)
	defer cancel()
	p, err := h.sim.WaitParticipant(ctx, id, name, state)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// page opens a blank page in a fresh incognito context.
func (h *harness) page() *rod.Page {
	h.t.Helper()
	inc, err := browser.Incognito()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = inc.Close() })
	p, err := inc.Page(proto.TargetCreateTarget{URL: "about:blank"})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// waitTimeout bounds every wait on a page element.
const waitTimeout = 10 * time.Second

// el waits for the element matching selector.
func el(t *testing.T, p *rod.Page, selector string) *rod.Element {
	t.Helper()
	e, err := retryNavigating(func(d time.Duration) (*rod.Element, error) { return p.Timeout(d).Element(selector) })
	if err != nil {
		t.Fatalf("element %s: %v (page text: %q)", selector, err, bodyText(p))
	}
	return e.CancelTimeout()
}

// retryNavigating runs find until it succeeds or waitTimeout passes. rod's
// element queries already wait for the element, but fail outright when the
// page navigates under them (a form post, a redirect): those are retried.
func retryNavigating(find func(time.Duration) (*rod.Element, error)) (*rod.Element, error) {
	deadline := time.Now().Add(waitTimeout)
	for {
		e, err := find(time.Until(deadline))
		var cdpErr *cdp.Error
		if err == nil || !errors.As(err, &cdpErr) || time.Now().After(deadline) {
			return e, err
		}
		time.Sleep(20 * time.Millisecond) // the new document is loading
	}
}

// elText waits for an element matching selector whose text contains text.
func elText(t *testing.T, p *rod.Page, selector, text string) *rod.Element {
	t.Helper()
	e, err := retryNavigating(func(d time.Duration) (*rod.Element, error) {
		return p.Timeout(d).ElementR(selector, regexp.QuoteMeta(text))
	})
	if err != nil {
		t.Fatalf("element %s with text %q: %v (page text: %q)", selector, text, err, bodyText(p))
	}
	return e.CancelTimeout()
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bodyText(p *rod.Page) string {
	res, err := p.Timeout(time.Second).Eval(`() => document.body ? document.body.innerText : ""`)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return res.Value.Str()
}

func navigate(t *testing.T, p *rod.Page, url string) {
	t.Helper()
	if err := p.Timeout(waitTimeout).Navigate(url); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
	if err := p.Timeout(waitTimeout).WaitLoad(); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
}

func click(t *testing.T, e *rod.Element) {
	t.Helper()
	if err := e.Timeout(waitTimeout).Click("left", 1); err != nil {
		t.Fatalf("click: %v", err)
	}
}

func input(t *testing.T, e *rod.Element, text string) {
	t.Helper()
	if err := e.Timeout(waitTimeout).Input(text); err != nil {
		t.Fatalf("input: %v", err)
	}
}

func attr(t *testing.T, e *rod.Element, name string) string {
	t.Helper()
	v, err := e.Attribute(name)
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return ""
	}
	return *v
}

func hasAttr(t *testing.T, e *rod.Element, name string) bool {
	t.Helper()
	v, err := e.Attribute(name)
	if err != nil {
		t.Fatal(err)
	}
	return v != nil
}

func text(t *testing.T, e *rod.Element) string {
	t.Helper()
	s, err := e.Text()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeClock is a settable clock for sim.WithClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
