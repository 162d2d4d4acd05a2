package browser_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/secret"
)

// cookieServer answers every page with the value of its "who" cookie; /set
// sets it to "first".
func cookieServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "who", Value: "first"})
		}
		v := "none"
		if c, err := r.Cookie("who"); err == nil && r.URL.Path != "/set" {
			v = c.Value
		} else if r.URL.Path == "/set" {
			v = "first"
		}
		_, _ = w.Write([]byte("<html><body><p id=v>" + v + "</p></body></html>"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openTab(t *testing.T, ctx context.Context, e *browser.Engine) *browser.Tab {
	t.Helper()
	tab, err := e.Open(ctx)
	if err != nil {
		t.Fatalf("open tab: %v", err)
	}
	t.Cleanup(func() { _ = tab.Close() })
	return tab
}

// visit navigates and returns the text of #v.
func visit(t *testing.T, ctx context.Context, tab *browser.Tab, url string) string {
	t.Helper()
	p := tab.Page().Context(ctx)
	if err := p.Navigate(url); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
	el, err := p.Element("#v")
	if err != nil {
		t.Fatalf("find #v on %s: %v", url, err)
	}
	txt, err := el.Text()
	if err != nil {
		t.Fatalf("read #v: %v", err)
	}
	return txt
}

// startOwn starts a two-context browser of the test's own (one it may kill,
// or whose metrics it reads), closed at cleanup.
func startOwn(t *testing.T, ctx context.Context, reg prometheus.Registerer) *browser.Engine {
	t.Helper()
	e := browser.New(browsertest.Config(2), logging.Discard(), reg)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOpenIsolatesCookiesBetweenTabs(t *testing.T) {
	t.Parallel()
	srv := cookieServer(t)
	ctx := testCtx(t, 30*time.Second)
	a := openTab(t, ctx, shared)
	if got := visit(t, ctx, a, srv.URL+"/set"); got != "first" {
		t.Fatalf("set page says %q", got)
	}
	if got := visit(t, ctx, a, srv.URL+"/"); got != "first" {
		t.Fatalf("tab a sees cookie %q, want first", got)
	}
	b := openTab(t, ctx, shared)
	if got := visit(t, ctx, b, srv.URL+"/"); got != "none" {
		t.Fatalf("tab b sees cookie %q, want none (contexts must not share cookies)", got)
	}
}

func TestSetCookiesReachOnlyThatTab(t *testing.T) {
	t.Parallel()
	srv := cookieServer(t)
	ctx := testCtx(t, 30*time.Second)
	a := openTab(t, ctx, shared)
	b := openTab(t, ctx, shared)
	session := []driver.Cookie{{
		Name: "who", Value: secret.String("signed-in"), Domain: "127.0.0.1", Path: "/",
		HTTPOnly: true, Expires: time.Now().Add(time.Hour),
	}}
	if err := a.SetCookies(ctx, session); err != nil {
		t.Fatalf("set cookies: %v", err)
	}
	if got := visit(t, ctx, a, srv.URL+"/"); got != "signed-in" {
		t.Fatalf("tab a sent cookie %q, want signed-in", got)
	}
	if got := visit(t, ctx, b, srv.URL+"/"); got != "none" {
		t.Fatalf("tab b sent cookie %q, want none", got)
	}
	got, err := a.Cookies(ctx)
	if err != nil {
		t.Fatalf("read cookies: %v", err)
	}
	if len(got) != 1 || got[0].Name != "who" || got[0].Value.Reveal() != "signed-in" || !got[0].HTTPOnly {
		t.Fatalf("cookies read back = %+v, want the one set", got)
	}
	if got[0].Expires.Before(time.Now().Add(50 * time.Minute)) {
		t.Fatalf("cookie expiry read back as %s, want about an hour from now", got[0].Expires)
	}
}

func TestOpenBlocksAtMaxContextsAndHonoursCtx(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	ctx := testCtx(t, 60*time.Second)
	e := startOwn(t, ctx, reg)
	a := openTab(t, ctx, e)
	openTab(t, ctx, e)
	if got := gauge(t, reg, "usher_worker_browser_contexts_open"); got != 2 {
		t.Fatalf("contexts open gauge = %v, want 2", got)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := e.Open(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Open with both contexts in use returned %v, want context.DeadlineExceeded", err)
	}

	got := make(chan error, 1)
	go func() {
		tab, err := e.Open(ctx)
		if err == nil {
			defer tab.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Open returned (%v) while both contexts were in use", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close tab: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second close of a tab: %v", err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Open after a tab closed: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Open did not unblock when a tab closed")
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestBrowserKilledIsRestartedAndTabsSeeCrashed(t *testing.T) {
	t.Parallel()
	srv := cookieServer(t)
	reg := prometheus.NewRegistry()
	ctx := testCtx(t, 60*time.Second)
	e := startOwn(t, ctx, reg)
	a := openTab(t, ctx, e)
	b := openTab(t, ctx, e)
	visit(t, ctx, a, srv.URL+"/")
	visit(t, ctx, b, srv.URL+"/")
	oldPID := e.PID()
	if n, err := e.MemoryBytes(); err != nil || n < 10<<20 {
		t.Fatalf("browser memory = %d bytes (%v), want a real figure", n, err)
	}
	if len(groupAlive(t, oldPID)) < 3 {
		t.Fatalf("browser group %d has fewer than 3 processes before the kill", oldPID)
	}

	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill browser: %v", err)
	}
	for _, tab := range []*browser.Tab{a, b} {
		select {
		case <-tab.Crashed():
		case <-ctx.Done():
			t.Fatal("tab did not see the crash")
		}
	}
	waitFor(t, 30*time.Second, "the browser to restart", func() bool { return e.PID() != 0 && e.PID() != oldPID })
	if got := gauge(t, reg, "usher_worker_browser_restarts_total"); got != 1 {
		t.Fatalf("restarts counter = %v, want 1", got)
	}
	waitFor(t, 10*time.Second, "the dead browser's processes to be gone", func() bool { return len(groupAlive(t, oldPID)) == 0 })
	if left, _ := browser.GroupPIDs(oldPID); len(left) != 0 {
		t.Fatalf("processes of the crashed browser left behind (zombies): %s", describe(left))
	}
	assertNoZombieChildren(t)

	// Crashed tabs still close cleanly and give their slots back.
	if err := a.Close(); err != nil {
		t.Fatalf("close crashed tab: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close crashed tab: %v", err)
	}
	c := openTab(t, ctx, e)
	if got := visit(t, ctx, c, srv.URL+"/"); got != "none" {
		t.Fatalf("new tab after restart read %q", got)
	}
	select {
	case <-c.Crashed():
		t.Fatal("a tab of the new browser reports a crash")
	default:
	}
}

func TestCloseLeavesNoProcesses(t *testing.T) {
	t.Parallel()
	srv := cookieServer(t)
	e := browser.New(browsertest.Config(2), logging.Discard(), nil)
	ctx := testCtx(t, 60*time.Second)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tab := openTab(t, ctx, e)
	visit(t, ctx, tab, srv.URL+"/")
	pid := e.PID()
	if err := e.Close(); err != nil {
		t.Fatalf("close engine: %v", err)
	}
	if left, _ := browser.GroupPIDs(pid); len(left) != 0 {
		t.Fatalf("processes of browser %d left after Close (alive or zombie): %s", pid, describe(left))
	}
	assertNoZombieChildren(t)
	select {
	case <-tab.Crashed():
	default:
		t.Fatal("a tab open when the engine closed does not report it")
	}
	if err := tab.Close(); err != nil {
		t.Fatalf("close tab after engine close: %v", err)
	}
	if _, err := e.Open(ctx); !errors.Is(err, browser.ErrClosed) {
		t.Fatalf("Open after Close = %v, want ErrClosed", err)
	}
}

func TestOpenBeforeStartFails(t *testing.T) {
	t.Parallel()
	e := browser.New(browsertest.Config(1), logging.Discard(), nil)
	if _, err := e.Open(testCtx(t, time.Second)); !errors.Is(err, browser.ErrNotStarted) {
		t.Fatalf("Open before Start = %v, want ErrNotStarted", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  browser.Config
		want string
	}{
		{browser.Config{MaxContexts: 1, LaunchTimeout: time.Second}, "USHER_CHROMIUM_BIN"},
		{browser.Config{Bin: "x", LaunchTimeout: time.Second}, "USHER_BROWSER_MAX_CONTEXTS"},
		{browser.Config{Bin: "x", MaxContexts: 1}, "USHER_CHROMIUM_LAUNCH_TIMEOUT"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if err := browsertest.Config(1).Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

// groupAlive lists the live (non-zombie) processes of process group pgid.
func groupAlive(t *testing.T, pgid int) []int {
	t.Helper()
	pids, err := browser.GroupPIDs(pgid)
	if err != nil {
		t.Fatal(err)
	}
	var alive []int
	for _, pid := range pids {
		if st, err := browser.ReadStat(pid); err == nil && st.State != 'Z' {
			alive = append(alive, pid)
		}
	}
	return alive
}

// assertNoZombieChildren fails if a process whose parent is this test
// binary is a zombie (exited and never reaped).
func assertNoZombieChildren(t *testing.T) {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		st, err := browser.ReadStat(pid)
		if err == nil && st.PPID == os.Getpid() && st.State == 'Z' {
			t.Errorf("zombie child %d (%s)", pid, st.Comm)
		}
	}
}

func describe(pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		st, err := browser.ReadStat(pid)
		if err != nil {
			fmt.Fprintf(&b, "[%d gone]", pid)
			continue
		}
		fmt.Fprintf(&b, "[%d %s state=%c ppid=%d]", pid, st.Comm, st.State, st.PPID)
	}
	return b.String()
}
