package teamsjoin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/services/worker/internal/teamsaccounts"
	"github.com/usherhq/usher/services/worker/internal/teamslogin"
	"github.com/usherhq/usher/services/worker/internal/teamssession"
	"github.com/usherhq/usher/services/worker/internal/teamssession/redistest"
	"github.com/usherhq/usher/shared/botstate"
)

func wantFailure(t *testing.T, err error, subCode string) *jobs.Failure {
	t.Helper()
	f, ok := jobs.AsFailure(err)
	if !ok || f.SubCode != subCode {
		t.Fatalf("err = %v, want a permanent failure %s", err, subCode)
	}
	return f
}

func wantRetry(t *testing.T, err error, subCode string) *jobs.RetryError {
	t.Helper()
	r, ok := jobs.AsRetry(err)
	if !ok || r.SubCode != subCode {
		t.Fatalf("err = %v, want a retry with %s", err, subCode)
	}
	return r
}

// metric sums a metric's samples (counters, gauges, histogram counts),
// optionally only those with label=value.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestSignedInBotJoinsOrgOnlyMeetingAsTheAccountAndTheNextReusesTheSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.account("acme", "notetaker@contoso.com", "Pa55-word-one", sim.BehaviorOK)
	w := f.worker(f.redisURL)

	m1 := f.meeting(true)
	if _, err := join(t, w, teamsJob(m1.URL, true, "")); err != nil {
		t.Fatal(err)
	}
	ps := f.participants(m1.ID)
	if len(ps) != 1 || ps[0].Identity != "notetaker@contoso.com" || ps[0].State != sim.StateInMeeting || ps[0].Name != "Bot notetaker" {
		t.Fatalf("participants = %+v, want the bot in the meeting as the account", ps)
	}
	// A second bot (another worker, another org-only meeting) reuses the cached session.
	other := f.worker(f.redisURL)
	m2 := f.meeting(true)
	if _, err := join(t, other, teamsJob(m2.URL, true, ModeAlways)); err != nil {
		t.Fatal(err)
	}
	if ps := f.participants(m2.ID); len(ps) != 1 || ps[0].Identity != "notetaker@contoso.com" {
		t.Fatalf("second meeting participants = %+v", ps)
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 1 {
		t.Fatalf("microsoft_logins = %d, want 1: the second bot reuses the session; logs:\n%s", st.MicrosoftLogins, f.logs.String())
	}
	if got := metric(t, other.reg, "usher_worker_teams_session_cache_hits_total"); got != 1 {
		t.Fatalf("the second worker's cache hits = %v", got)
	}
	if got := metric(t, w.reg, "usher_worker_teams_logins_total", "outcome", "ok"); got != 1 {
		t.Fatalf("logins{ok} = %v", got)
	}
	rec := f.record("acme", id)
	if rec["status"] != "ok" || rec["last_login_at"] == nil || rec["last_used_at"] == nil {
		t.Fatalf("account record = %v", rec)
	}
}

func TestWithoutUseLoginTheBotJoinsAnonymously(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.account("acme", "notetaker@contoso.com", "pw-anon-1", sim.BehaviorOK)
	w := f.worker(f.redisURL)

	open := f.meeting(false)
	if _, err := join(t, w, teamsJob(open.URL, false, "")); err != nil {
		t.Fatal(err)
	}
	if ps := f.participants(open.ID); len(ps) != 1 || ps[0].Identity != sim.IdentityAnonymous || ps[0].Name != "Usher Notetaker" {
		t.Fatalf("participants = %+v", ps)
	}
	orgOnly := f.meeting(true)
	_, err := join(t, w, teamsJob(orgOnly.URL, false, ""))
	var je *driver.JoinError
	if !errors.As(err, &je) || je.SubCode != botstate.SubLoginRequired {
		t.Fatalf("org-only meeting without use_login: %v", err)
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 0 {
		t.Fatalf("an anonymous bot logged in: %+v", st)
	}
}

func TestOnlyIfRequiredSignsInOnlyWhenTheMeetingAsks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.account("acme", "notetaker@contoso.com", "pw-oir-1", sim.BehaviorOK)
	w := f.worker(f.redisURL)

	open := f.meeting(false)
	if _, err := join(t, w, teamsJob(open.URL, true, ModeOnlyIfRequired)); err != nil {
		t.Fatal(err)
	}
	if ps := f.participants(open.ID); ps[0].Identity != sim.IdentityAnonymous {
		t.Fatalf("open meeting: %+v, want an anonymous join", ps)
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 0 {
		t.Fatalf("logged in for a meeting that did not ask: %+v", st)
	}
	orgOnly := f.meeting(true)
	if _, err := join(t, w, teamsJob(orgOnly.URL, true, ModeOnlyIfRequired)); err != nil {
		t.Fatal(err)
	}
	if ps := f.participants(orgOnly.ID); len(ps) != 1 || ps[0].Identity != "notetaker@contoso.com" {
		t.Fatalf("org-only meeting: %+v", ps)
	}
	reqs := w.drv.requests()
	if len(reqs) != 3 || reqs[1].Teams != nil || reqs[2].Teams == nil {
		t.Fatalf("driver calls: anonymous, anonymous (bounced), signed in — got %d", len(reqs))
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 1 {
		t.Fatalf("microsoft_logins = %d", st.MicrosoftLogins)
	}
}

func TestRefusedLoginsFailTheBotAndParkTheAccount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cases := []struct {
		email, behavior, password string
		subCode, status           string
	}{
		{"wrongpw@contoso.com", sim.BehaviorOK, "not-the-password", botstate.SubTeamsInvalidCredentials, "invalid"},
		{"mfa@contoso.com", sim.BehaviorMFA, "", botstate.SubTeamsMFARequired, "mfa_required"},
		{"locked@contoso.com", sim.BehaviorLocked, "", botstate.SubTeamsAccountLocked, "locked"},
		{"captcha@contoso.com", sim.BehaviorCaptcha, "", botstate.SubBlockedByCaptcha, "ok"},
	}
	for _, c := range cases {
		t.Run(c.subCode, func(t *testing.T) {
			project := strings.Split(c.email, "@")[0]
			if _, err := f.sim.PutMicrosoftAccount(sim.MicrosoftAccount{Email: c.email, Password: "the-real-password", Behavior: c.behavior}); err != nil {
				t.Fatal(err)
			}
			pw := c.password
			if pw == "" {
				pw = "the-real-password"
			}
			id := f.storeCredentials(project, c.email, pw)
			w := f.worker(f.redisURL)
			job := teamsJob(f.meeting(true).URL, true, "")
			job.Project = project
			_, err := join(t, w, job)
			fail := wantFailure(t, err, c.subCode)
			if fail.Meta["account_id"] != id || fail.Meta["screenshot_url"] != "/api/v1/credentials/teams/"+id+"/screenshot" {
				t.Fatalf("failure metadata = %v", fail.Meta)
			}
			rec := f.record(project, id)
			if rec["status"] != c.status || rec["last_failure_code"] != c.subCode || rec["screenshot"] != project+"."+id {
				t.Fatalf("account after %s: %v", c.subCode, rec)
			}
			if _, err := f.topo.Screenshots.GetInfo(context.Background(), project+"."+id); err != nil {
				t.Fatalf("no screenshot stored: %v", err)
			}
			if c.status == "ok" {
				return
			}
			// The account is not tried again: the next bot fails fast with no login attempt.
			before := f.sim.Stats().MicrosoftLoginFailures
			job = teamsJob(f.meeting(true).URL, true, "")
			job.Project = project
			_, err = join(t, w, job)
			wantFailure(t, err, botstate.SubTeamsCredentialsMissing)
			if after := f.sim.Stats().MicrosoftLoginFailures; after != before {
				t.Fatalf("a parked account was tried again (%d → %d failures)", before, after)
			}
			// New credentials make it usable again.
			f.storeCredentials(project, c.email, "the-real-password")
			if c.behavior == sim.BehaviorOK {
				job = teamsJob(f.meeting(true).URL, true, "")
				job.Project = project
				if _, err := join(t, w, job); err != nil {
					t.Fatalf("after new credentials: %v", err)
				}
			}
		})
	}
}

func TestNoStoredAccountIsCredentialsMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.worker(f.redisURL)
	_, err := join(t, w, teamsJob(f.meeting(true).URL, true, ""))
	wantFailure(t, err, botstate.SubTeamsCredentialsMissing)
	if n := len(w.drv.requests()); n != 0 {
		t.Fatalf("the driver was called %d times", n)
	}
}

func TestBusyAccountMakesTheJobWaitWithoutASlot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.account("acme", "only@contoso.com", "pw-busy-1", sim.BehaviorOK)
	w := f.worker(f.redisURL)
	m := f.meeting(true)

	leave, err := join(t, w, teamsJob(m.URL, true, ""))
	if err != nil {
		t.Fatal(err)
	}
	// The same account cannot be in the same meeting twice.
	_, err = join(t, w, teamsJob(m.URL, true, ""))
	r := wantRetry(t, err, botstate.SubTeamsNoLoginAvailable)
	if r.After != time.Second {
		t.Fatalf("retry after %s, want the configured busy delay", r.After)
	}
	// Once the first bot is out, the account is free again.
	leave()
	if _, err := join(t, w, teamsJob(m.URL, true, "")); err != nil {
		t.Fatalf("after the first bot left: %v", err)
	}
}

func TestSessionExpiredMidFleetIsReplacedByOneFreshLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.account("acme", "fleet@contoso.com", "pw-fleet-1", sim.BehaviorOK)
	workers := []*worker{f.worker(f.redisURL), f.worker(f.redisURL), f.worker(f.redisURL)}
	if _, err := join(t, workers[0], teamsJob(f.meeting(true).URL, true, "")); err != nil {
		t.Fatal(err)
	}
	if n, err := f.sim.ExpireMicrosoftSessions("fleet@contoso.com"); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	var wg sync.WaitGroup
	meetings := make([]sim.Meeting, 3)
	for i := range meetings {
		meetings[i] = f.meeting(true)
	}
	for i, m := range meetings {
		wg.Go(func() {
			if _, err := join(t, workers[i], teamsJob(m.URL, true, "")); err != nil {
				t.Errorf("bot %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for _, m := range meetings {
		if ps := f.participants(m.ID); len(ps) != 1 || ps[0].Identity != "fleet@contoso.com" || ps[0].State != sim.StateInMeeting {
			t.Fatalf("meeting %s: %+v", m.ID, ps)
		}
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 2 {
		t.Fatalf("microsoft_logins = %d, want 2: the first, and one fresh login for the whole fleet after expiry", st.MicrosoftLogins)
	}
	var invalidations float64
	for _, w := range workers {
		invalidations += metric(t, w.reg, "usher_worker_teams_session_cache_invalidations_total")
	}
	if invalidations < 1 {
		t.Fatal("no session invalidation was counted")
	}
}

func TestFiftyBotsForOneAccountLogInOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.account("acme", "crowd@contoso.com", "pw-crowd-1", sim.BehaviorOK)
	workers := make([]*worker, 5)
	for i := range workers {
		workers[i] = f.worker(f.redisURL)
	}
	job := teamsJob(f.meeting(true).URL, true, "")
	// The account as the joiner sees it (claimed and released at once: this
	// test is about the session cache, 50 bots would exceed the account's limit).
	c, err := workers[0].accounts.Claim(context.Background(), "acme", job.MeetingUrl, job.BotId)
	if err != nil {
		t.Fatal(err)
	}
	acct := c.Account
	c.Release()

	key := teamssession.Key{Project: "acme", AccountID: id, CredentialsVersion: acct.CredentialsVersion}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			w := workers[i%len(workers)]
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := w.sessions.Get(ctx, key, w.joiner.loginFunc(job, acct))
			if err != nil || !teamssession.HasAuthCookie(s.Cookies) {
				t.Errorf("session request %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if st := f.sim.Stats(); st.MicrosoftLogins != 1 || st.MicrosoftLoginFailures != 0 {
		t.Fatalf("simulator saw %d logins (%d failures) for 50 concurrent requests, want exactly 1; logs:\n%s", st.MicrosoftLogins, st.MicrosoftLoginFailures, f.logs.String())
	}
}

func TestRedisDownBotsStillJoinLoggingInEachTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.account("acme", "noredis@contoso.com", "pw-noredis-1", sim.BehaviorOK)
	r := redistest.Start(t)
	w := f.worker(r.URL)
	if _, err := join(t, w, teamsJob(f.meeting(true).URL, true, "")); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	for i := range 2 {
		if _, err := join(t, w, teamsJob(f.meeting(true).URL, true, "")); err != nil {
			t.Fatalf("bot %d with Redis down: %v", i, err)
		}
	}
	if st := f.sim.Stats(); st.MicrosoftLogins != 3 {
		t.Fatalf("microsoft_logins = %d, want one per bot while Redis is down (3)", st.MicrosoftLogins)
	}
	if metric(t, w.reg, "usher_worker_teams_session_cache_up") != 0 || metric(t, w.reg, "usher_worker_teams_session_cache_bypassed_total") != 2 {
		t.Fatal("metrics do not say the session cache is down")
	}
	if !strings.Contains(f.logs.String(), "teams session cache unavailable") {
		t.Fatal("logs do not say the session cache is down")
	}
	r.Restart()
	waitFor(t, 10*time.Second, func() bool {
		_, err := join(t, w, teamsJob(f.meeting(true).URL, true, ""))
		return err == nil && metric(t, w.reg, "usher_worker_teams_session_cache_up") == 1
	})
	before := f.sim.Stats().MicrosoftLogins
	if _, err := join(t, w, teamsJob(f.meeting(true).URL, true, "")); err != nil {
		t.Fatal(err)
	}
	if after := f.sim.Stats().MicrosoftLogins; after != before {
		t.Fatalf("Redis is back but the bot logged in again (%d → %d)", before, after)
	}
}

// stubLogin fails like a login page that never loads.
type stubLogin struct{ calls int }

func (s *stubLogin) Login(context.Context, string, teamslogin.Credentials) ([]driver.Cookie, error) {
	s.calls++
	return nil, &teamslogin.Error{Kind: teamslogin.KindTimeout, Step: "email", Err: errors.New("page stayed at \"other\"")}
}
func (s *stubLogin) EntryURL(string, bool) string { return "http://login.invalid/" }

func TestLoginTimeoutsRetryWithGrowingBackoff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.account("acme", "slow@contoso.com", "pw-slow-1", sim.BehaviorOK)
	w := f.worker(f.redisURL)
	stub := &stubLogin{}
	j := New(Config{BusyRetry: time.Second, LoginRetry: time.Second, LoginRetryMax: 4 * time.Second}, w.drv, w.accounts, w.sessions, stub, w.joiner.log)
	var delays []time.Duration
	for range 4 {
		_, err := j.Join(context.Background(), teamsJob(f.meeting(true).URL, true, ""), nil)
		delays = append(delays, wantRetry(t, err, botstate.SubTeamsLoginFailed).After)
	}
	for i, d := range delays {
		hi := min(time.Second<<i, 4*time.Second)
		if d < hi/2 || d > hi {
			t.Fatalf("retry %d after %s, want within [%s, %s] (delays %v)", i, d, hi/2, hi, delays)
		}
	}
	if rec := f.record("acme", id); rec["status"] != "ok" || rec["last_failure_code"] != botstate.SubTeamsLoginFailed {
		t.Fatalf("a timeout must leave the account usable: %v", rec)
	}
	if stub.calls != 4 {
		t.Fatalf("%d logins", stub.calls)
	}
}

func TestBadJobsAreInvalid(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.worker(f.redisURL)
	job := teamsJob(f.meeting(false).URL, true, "sometimes")
	_, err := w.joiner.Join(context.Background(), job, nil)
	fail := wantFailure(t, err, botstate.SubInvalidJob)
	if !strings.Contains(fail.Error(), "login_mode") {
		t.Fatalf("error does not name the field: %v", fail)
	}
	job = teamsJob(f.meeting(false).URL, false, "")
	job.Platform = 1
	_, err = w.joiner.Join(context.Background(), job, nil)
	wantFailure(t, err, botstate.SubInvalidJob)
}

func TestSecretsNeverReachLogsMetricsErrorsOrEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const password = "Zebra-Quartz-8812-secret"
	f.account("acme", "scan@contoso.com", password, sim.BehaviorOK)
	f.account("acme2", "scanwrong@contoso.com", password, sim.BehaviorOK)
	f.storeCredentials("acme2", "scanwrong@contoso.com", password+"-wrong")
	w := f.worker(f.redisURL)

	var outputs []string
	if _, err := join(t, w, teamsJob(f.meeting(true).URL, true, "")); err != nil {
		t.Fatal(err)
	}
	wrong := teamsJob(f.meeting(true).URL, true, "")
	wrong.Project = "acme2"
	_, err := join(t, w, wrong)
	fail := wantFailure(t, err, botstate.SubTeamsInvalidCredentials)
	// What an event would carry: the error text, the sub_code, the metadata.
	outputs = append(outputs, err.Error(), fmt.Sprintf("%v %+v %#v", err, fail, fail.Meta))
	for k, v := range fail.Meta {
		outputs = append(outputs, k+"="+v)
	}
	// The session cookies the bot signed in with.
	reqs := w.drv.requests()
	var cookies []string
	for _, r := range reqs {
		if r.Teams == nil {
			continue
		}
		outputs = append(outputs, fmt.Sprintf("%v %+v", r, r.Teams))
		for _, c := range r.Teams.Cookies {
			if c.Value.Reveal() != "" && len(c.Value.Reveal()) >= 8 {
				cookies = append(cookies, c.Value.Reveal())
			}
		}
	}
	if len(cookies) == 0 {
		t.Fatal("the test found no cookie values to look for")
	}
	outputs = append(outputs, f.logs.String(), metricsText(t, w.reg), fmt.Sprintf("%v %+v %#v", f.ring, f.ring, f.ring))
	_, sealingKey, _ := strings.Cut(f.ringSpec.Reveal(), ":")
	for _, out := range outputs {
		if strings.Contains(out, password) {
			t.Fatalf("the password leaked into: %.300s", out)
		}
		if strings.Contains(out, sealingKey) {
			t.Fatalf("the sealing key leaked into: %.300s", out)
		}
		for _, c := range cookies {
			if strings.Contains(out, c) {
				t.Fatalf("a session cookie value leaked into: %.300s", out)
			}
		}
	}
	// At rest: the account record and the cached session are sealed.
	for _, project := range []string{"acme", "acme2"} {
		keys, _ := f.topo.TeamsAccounts.ListKeysFiltered(context.Background(), project+".*")
		for k := range keys.Keys() {
			e, err := f.topo.TeamsAccounts.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(e.Value()), password) {
				t.Fatal("plain password in TEAMS_ACCOUNTS")
			}
		}
	}
	for _, v := range redisValues(t, f.redisURL, f.prefix) {
		for _, c := range cookies {
			if strings.Contains(v, c) || strings.Contains(v, password) {
				t.Fatal("a secret is stored in Redis unsealed")
			}
		}
	}
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConfigValidateNamesVariables(t *testing.T) {
	t.Parallel()
	good := Config{BusyRetry: 5 * time.Second, LoginRetry: 5 * time.Second, LoginRetryMax: 2 * time.Minute}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"USHER_TEAMS_ACCOUNT_BUSY_RETRY": func(c *Config) { c.BusyRetry = 0 },
		"USHER_TEAMS_LOGIN_RETRY":        func(c *Config) { c.LoginRetry = time.Millisecond },
		"USHER_TEAMS_LOGIN_RETRY_MAX":    func(c *Config) { c.LoginRetryMax = time.Second },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	if err := (teamsaccounts.Config{MaxBotsPerAccount: 0}).Validate(); err == nil || !strings.Contains(err.Error(), "USHER_TEAMS_ACCOUNT_MAX_BOTS") {
		t.Errorf("teamsaccounts: Validate = %v", err)
	}
}
