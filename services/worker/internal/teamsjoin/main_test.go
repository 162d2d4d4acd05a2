package teamsjoin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
	"github.com/usherhq/usher/services/worker/internal/drivers/teams"
	"github.com/usherhq/usher/services/worker/internal/drivers/webjoin"
	"github.com/usherhq/usher/services/worker/internal/teamsaccounts"
	"github.com/usherhq/usher/services/worker/internal/teamslogin"
	"github.com/usherhq/usher/services/worker/internal/teamssession"
	"github.com/usherhq/usher/services/worker/internal/teamssession/redistest"
	"github.com/usherhq/usher/shared/ids"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/teamsaccount"
	"github.com/usherhq/usher/shared/topology"
)

// engine is the package's one Chromium.
var engine *browser.Engine

func TestMain(m *testing.M) {
	redis.SetLogger(teamssession.RedisLogger(logging.Discard()))
	os.Exit(browsertest.Main(m, &engine, func() (*browser.Engine, error) { return browsertest.Start(16) }))
}

// fixture is one simulated world (simulator, JetStream, Redis prefix, sealing
// keys) in which workers are built.
type fixture struct {
	t        testing.TB
	sim      *sim.Simulator
	js       *natstest.Server
	topo     *topology.Topology
	ring     *sealbox.Ring
	ringSpec secret.String
	redisURL string
	prefix   string
	logs     *logging.Buffer
	maxBots  int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	s := sim.New(sim.Config{})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if err := s.SetPublicURL(srv.URL); err != nil {
		t.Fatal(err)
	}
	js := natstest.New(t)
	spec, _ := sealbox.NewKeySpec("k1")
	ring, err := sealbox.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	url := redistest.URL()
	return &fixture{t: t, sim: s, js: js, topo: js.Topology(), ring: ring, ringSpec: spec,
		redisURL: url, prefix: redistest.Prefix(t, url), logs: &logging.Buffer{}, maxBots: 8}
}

// worker is one worker process's Teams stack.
type worker struct {
	joiner   *Joiner
	drv      *recorder
	reg      *prometheus.Registry
	sessions *teamssession.Cache
	accounts *teamsaccounts.Accounts
	login    *teamslogin.Login
}

func (f *fixture) worker(redisURL string) *worker {
	f.t.Helper()
	log := logging.New(f.logs, logging.Config{Level: "debug", Format: "json"}, "worker")
	reg := prometheus.NewRegistry()
	topo := f.js.Topology()
	accts := teamsaccounts.New(teamsaccounts.Config{MaxBotsPerAccount: f.maxBots}, topo.TeamsAccounts, topo.AccountLeases, f.ring, log, reg)
	cache, err := teamssession.New(teamssession.Config{
		RedisURL: redisURL, KeyPrefix: f.prefix, MaxTTL: time.Hour, ExpiryMargin: time.Minute,
		LockTTL: 10 * time.Second, WaitTimeout: 30 * time.Second, FailureTTL: 30 * time.Second, RedisTimeout: 300 * time.Millisecond,
	}, f.ring, log, reg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = cache.Close() })
	login := teamslogin.New(teamslogin.Config{URL: "https://login.example.invalid/", Timeout: 30 * time.Second, StepTimeout: 10 * time.Second, ScreenshotMaxBytes: 1 << 20},
		engine, topo.Screenshots, log, reg)
	// The product's Teams page driver (internal/drivers/teams).
	drv := &recorder{Driver: teams.New(engine, webjoin.Config{StepTimeout: 20 * time.Second, PollInterval: 100 * time.Millisecond, LeaveTimeout: 10 * time.Second},
		webjoin.NewMetrics(reg), log)}
	j := New(Config{BusyRetry: time.Second, LoginRetry: time.Second, LoginRetryMax: 8 * time.Second}, drv, accts, cache, login, log)
	return &worker{joiner: j, drv: drv, reg: reg, sessions: cache, accounts: accts, login: login}
}

// account stores a project's Teams account the way ingest's credentials API
// does, and the same account in the simulator's Microsoft directory.
func (f *fixture) account(project, email, password, behavior string) string {
	f.t.Helper()
	if behavior != "" {
		if _, err := f.sim.PutMicrosoftAccount(sim.MicrosoftAccount{Email: email, Password: secret.String(password), DisplayName: "Bot " + strings.Split(email, "@")[0], Behavior: behavior}); err != nil {
			f.t.Fatal(err)
		}
	}
	return f.storeCredentials(project, email, password)
}

func (f *fixture) storeCredentials(project, email, password string) string {
	f.t.Helper()
	id := teamsaccount.AccountID(email)
	sealed, err := f.ring.Seal([]byte(password), teamsaccount.PasswordContext(project, id))
	if err != nil {
		f.t.Fatal(err)
	}
	now := time.Now().UTC()
	rec, _ := json.Marshal(map[string]any{
		"id": id, "project": project, "email": email, "sealed_password": sealed,
		"credentials_version": ids.NewBotID(now)[4:], "status": "ok", "status_changed_at": now,
		"created_at": now, "updated_at": now,
	})
	if _, err := f.topo.TeamsAccounts.Put(context.Background(), teamsaccount.Key(project, id), rec); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) record(project, id string) map[string]any {
	f.t.Helper()
	e, err := f.topo.TeamsAccounts.Get(context.Background(), teamsaccount.Key(project, id))
	if err != nil {
		f.t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(e.Value(), &m)
	return m
}

func (f *fixture) meeting(authRequired bool) sim.Meeting {
	f.t.Helper()
	m, err := f.sim.CreateMeeting(sim.MeetingSpec{Platform: sim.Teams, AuthRequired: authRequired})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// participants returns the bots (not the simulated humans) of a meeting, as
// the simulator saw them join.
func (f *fixture) participants(id string) []sim.Participant {
	f.t.Helper()
	m, err := f.sim.Meeting(id)
	if err != nil {
		f.t.Fatal(err)
	}
	var bots []sim.Participant
	for _, p := range m.Participants {
		if !p.Human {
			bots = append(bots, p)
		}
	}
	return bots
}

func teamsJob(meetingURL string, useLogin bool, mode string) *usherv1.JoinJob {
	now := time.Now()
	return &usherv1.JoinJob{
		BotId: ids.NewBotID(now), Project: "acme", Platform: usherv1.Platform_PLATFORM_TEAMS,
		MeetingUrl: meetingURL, BotName: "Usher Notetaker", Simulated: true,
		CreatedAt: timestamppb.New(now), JoinDeadline: timestamppb.New(now.Add(5 * time.Minute)),
		TeamsSettings: &usherv1.TeamsSettings{UseLogin: useLogin, LoginMode: mode},
	}
}

func join(t testing.TB, w *worker, job *usherv1.JoinJob) (func(), error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := w.joiner.Join(ctx, job, nil)
	if err != nil {
		return nil, err
	}
	closed := false
	closeFn := func() {
		if !closed {
			closed = true
			_ = m.Close()
		}
	}
	t.Cleanup(closeFn)
	return closeFn, nil
}
