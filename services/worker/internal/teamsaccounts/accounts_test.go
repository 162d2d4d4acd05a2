package teamsaccounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/teamsaccount"
	"github.com/usherhq/usher/shared/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	t    *testing.T
	js   *natstest.Server
	topo *topology.Topology
	ring *sealbox.Ring
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	js := natstest.New(t)
	spec, _ := sealbox.NewKeySpec("k1")
	ring, err := sealbox.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, js: js, topo: js.Topology(), ring: ring}
}

// accounts returns a new Accounts on its own connection, as another worker would have.
func (f *fixture) accounts(maxBots int) (*Accounts, *prometheus.Registry) {
	f.t.Helper()
	topo := f.js.Topology()
	reg := prometheus.NewRegistry()
	return New(Config{MaxBotsPerAccount: maxBots}, topo.TeamsAccounts, topo.AccountLeases, f.ring, logging.Discard(), reg), reg
}

// store writes an account record the way ingest's credentials API does.
func (f *fixture) store(project, email, password, status string, lastUsed time.Time) string {
	f.t.Helper()
	id := teamsaccount.AccountID(email)
	sealed, err := f.ring.Seal([]byte(password), teamsaccount.PasswordContext(project, id))
	if err != nil {
		f.t.Fatal(err)
	}
	rec := map[string]any{
		"id": id, "project": project, "email": email, "sealed_password": sealed,
		"credentials_version": "v-" + email, "status": status,
		"created_at": time.Now().UTC(), "updated_at": time.Now().UTC(),
		"future_field_from_ingest": "kept",
	}
	if !lastUsed.IsZero() {
		rec["last_used_at"] = lastUsed
	}
	b, _ := json.Marshal(rec)
	if _, err := f.topo.TeamsAccounts.Put(context.Background(), teamsaccount.Key(project, id), b); err != nil {
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

func TestClaimChoosesLeastRecentlyUsedHealthyAccount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now().UTC()
	f.store("acme", "broken@contoso.com", "pw", teamsaccount.StatusInvalid, time.Time{})
	f.store("acme", "locked@contoso.com", "pw", teamsaccount.StatusLocked, time.Time{})
	recent := f.store("acme", "recent@contoso.com", "pw-recent", teamsaccount.StatusOK, now.Add(-time.Minute))
	old := f.store("acme", "old@contoso.com", "pw-old", teamsaccount.StatusOK, now.Add(-time.Hour))
	f.store("other", "elsewhere@contoso.com", "pw", teamsaccount.StatusOK, time.Time{})
	a, _ := f.accounts(4)
	ctx := context.Background()

	c1, err := a.Claim(ctx, "acme", "https://teams.example/meet/1", "bot_1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c1.Release)
	if c1.Account.ID != old || c1.Account.Email != "old@contoso.com" {
		t.Fatalf("first claim took %s, want the least recently used %s", c1.Account.Email, old)
	}
	pw, err := a.Password(c1.Account)
	if err != nil || pw.Reveal() != "pw-old" {
		t.Fatalf("Password = %v", err)
	}
	if rec := f.record("acme", old); rec["last_used_at"] == nil || rec["future_field_from_ingest"] != "kept" {
		t.Fatalf("after claim the record is %v", rec)
	}
	// Now "old" was just used: a bot for another meeting gets "recent".
	c2, err := a.Claim(ctx, "acme", "https://teams.example/meet/2", "bot_2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Release)
	if c2.Account.ID != recent {
		t.Fatalf("second claim took %s, want %s", c2.Account.Email, recent)
	}
	if got := testutil.ToFloat64(a.m.claims.WithLabelValues("claimed")); got != 2 {
		t.Fatalf("claimed counter = %v", got)
	}
}

func TestNoHealthyAccount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, _ := f.accounts(4)
	if _, err := a.Claim(context.Background(), "acme", "https://teams.example/meet/1", "bot_1"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("no accounts: err = %v", err)
	}
	f.store("acme", "mfa@contoso.com", "pw", teamsaccount.StatusMFARequired, time.Time{})
	if _, err := a.Claim(context.Background(), "acme", "https://teams.example/meet/1", "bot_1"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("only an MFA account: err = %v", err)
	}
}

func TestOneBotPerMeetingAndBoundedConcurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store("acme", "bot@contoso.com", "pw", teamsaccount.StatusOK, time.Time{})
	a, _ := f.accounts(2)
	b, _ := f.accounts(2) // another worker
	ctx := context.Background()

	c1, err := a.Claim(ctx, "acme", "https://teams.example/meet/X", "bot_1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(ctx, "acme", "https://teams.example/meet/X", "bot_2"); !errors.Is(err, ErrAllBusy) {
		t.Fatalf("same account twice in one meeting: err = %v", err)
	}
	c3, err := b.Claim(ctx, "acme", "https://teams.example/meet/Y", "bot_3")
	if err != nil {
		t.Fatalf("second meeting: %v", err)
	}
	t.Cleanup(c3.Release)
	if _, err := b.Claim(ctx, "acme", "https://teams.example/meet/Z", "bot_4"); !errors.Is(err, ErrAllBusy) {
		t.Fatalf("third meeting beyond the limit of 2: err = %v", err)
	}
	// A failed slot claim leaves no meeting key behind: Z is free once a slot frees.
	c1.Release()
	c1.Release() // idempotent
	c4, err := b.Claim(ctx, "acme", "https://teams.example/meet/Z", "bot_4")
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	t.Cleanup(c4.Release)
	c5, err := a.Claim(ctx, "acme", "https://teams.example/meet/X", "bot_2")
	if err == nil {
		c5.Release()
		t.Fatal("X claimed while the account is at its limit")
	}
}

func TestConcurrentClaimsAcrossWorkers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store("acme", "bot@contoso.com", "pw", teamsaccount.StatusOK, time.Time{})
	const workers = 12
	as := make([]*Accounts, workers)
	for i := range as {
		as[i], _ = f.accounts(4)
	}
	run := func(meeting func(i int) string) (won int32, claims []*Claim) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				c, err := as[i].Claim(context.Background(), "acme", meeting(i), fmt.Sprintf("bot_%d", i))
				if err == nil {
					atomic.AddInt32(&won, 1)
					mu.Lock()
					claims = append(claims, c)
					mu.Unlock()
				} else if !errors.Is(err, ErrAllBusy) {
					t.Errorf("claim: %v", err)
				}
			})
		}
		wg.Wait()
		return won, claims
	}
	won, claims := run(func(int) string { return "https://teams.example/meet/same" })
	if won != 1 {
		t.Fatalf("%d workers put the account in the same meeting, want 1", won)
	}
	for _, c := range claims {
		c.Release()
	}
	won, claims = run(func(i int) string { return fmt.Sprintf("https://teams.example/meet/%d", i) })
	if won != 4 {
		t.Fatalf("%d bots hold the account at once, want the limit 4", won)
	}
	for _, c := range claims {
		c.Release()
	}
}

func TestClaimOfADeadWorkerExpiresAndALiveOneIsRenewed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store("acme", "bot@contoso.com", "pw", teamsaccount.StatusOK, time.Time{})
	dead, _ := f.accounts(1)
	live, _ := f.accounts(1)
	other, _ := f.accounts(1)
	ctx := context.Background()
	ttl, err := dead.leaseTTL(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A worker that dies right after claiming: its keys are never renewed nor deleted.
	accts, _ := dead.healthy(ctx, "acme")
	if _, err := dead.tryClaim(ctx, accts[0], "https://teams.example/meet/A", []byte(`{"bot_id":"bot_dead"}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := other.Claim(ctx, "acme", "https://teams.example/meet/B", "bot_b"); !errors.Is(err, ErrAllBusy) {
		t.Fatalf("while the dead worker's claim lives: err = %v", err)
	}
	var c *Claim
	waitFor(t, ttl+5*time.Second, func() bool {
		c, err = other.Claim(ctx, "acme", "https://teams.example/meet/B", "bot_b")
		return err == nil
	})
	if waited := time.Since(start); waited < ttl-500*time.Millisecond {
		t.Fatalf("claimed after %s, before the TTL %s", waited, ttl)
	}
	c.Release()

	// A live holder's heartbeat keeps its claim past several TTLs.
	held, err := live.Claim(ctx, "acme", "https://teams.example/meet/C", "bot_c")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(held.Release)
	since := time.Now()
	waitFor(t, 3*ttl+5*time.Second, func() bool {
		if _, err := other.Claim(ctx, "acme", "https://teams.example/meet/D", "bot_d"); !errors.Is(err, ErrAllBusy) {
			t.Fatalf("a live claim was lost after %s: %v", time.Since(since), err)
		}
		return time.Since(since) > 2*ttl
	})
	select {
	case <-held.Lost():
		t.Fatal("Lost closed for a live claim")
	default:
	}
}

func TestRecordFailureAppliesOnlyToTheSameCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.store("acme", "bot@contoso.com", "pw", teamsaccount.StatusOK, time.Time{})
	a, _ := f.accounts(4)
	ctx := context.Background()
	c, err := a.Claim(ctx, "acme", "https://teams.example/meet/1", "bot_1")
	if err != nil {
		t.Fatal(err)
	}
	c.Release()

	err = a.RecordFailure(ctx, c.Account, Failure{Status: teamsaccount.StatusInvalid, SubCode: "teams_login_invalid_credentials", Screenshot: teamsaccount.ScreenshotName("acme", id)})
	if err != nil {
		t.Fatal(err)
	}
	rec := f.record("acme", id)
	if rec["status"] != teamsaccount.StatusInvalid || rec["last_failure_code"] != "teams_login_invalid_credentials" || rec["screenshot"] != "acme."+id || rec["future_field_from_ingest"] != "kept" {
		t.Fatalf("record after failure: %v", rec)
	}
	if _, err := a.Claim(ctx, "acme", "https://teams.example/meet/2", "bot_2"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("an invalid account was chosen again: %v", err)
	}

	// The credentials are PUT again (new version): an old verdict does not land.
	f.store("acme", "bot@contoso.com", "pw2", teamsaccount.StatusOK, time.Time{})
	stale := c.Account
	stale.CredentialsVersion = "v-before"
	if err := a.RecordFailure(ctx, stale, Failure{Status: teamsaccount.StatusLocked, SubCode: "teams_login_account_locked"}); !errors.Is(err, ErrCredentialsChanged) {
		t.Fatalf("stale verdict: err = %v", err)
	}
	if rec := f.record("acme", id); rec["status"] != teamsaccount.StatusOK {
		t.Fatalf("stale verdict changed the status: %v", rec)
	}
	c2, err := a.Claim(ctx, "acme", "https://teams.example/meet/3", "bot_3")
	if err != nil {
		t.Fatalf("account with new credentials: %v", err)
	}
	c2.Release()
	if err := a.RecordLogin(ctx, c2.Account); err != nil {
		t.Fatal(err)
	}
	if rec := f.record("acme", id); rec["last_login_at"] == nil {
		t.Fatalf("RecordLogin: %v", rec)
	}
}

func TestSealedPasswordOfAnotherAccountDoesNotOpen(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store("acme", "bot@contoso.com", "pw", teamsaccount.StatusOK, time.Time{})
	a, _ := f.accounts(4)
	c, err := a.Claim(context.Background(), "acme", "https://teams.example/meet/1", "bot_1")
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	moved := c.Account
	moved.Project = "other" // the blob copied into another project's record
	if _, err := a.Password(moved); !errors.Is(err, sealbox.ErrOpen) {
		t.Fatalf("Password of a moved blob: %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClaimTakenOverIsReportedLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store("acme", "bot@contoso.com", "pw", teamsaccount.StatusOK, time.Time{})
	a, _ := f.accounts(1)
	c, err := a.Claim(context.Background(), "acme", "https://teams.example/meet/1", "bot_1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	// The claim's slot is deleted under it (as after a partition longer than the TTL).
	if err := f.topo.AccountLeases.Purge(context.Background(), slotKey(c.Account.ID, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed after the claim was taken away")
	}
	if got := testutil.ToFloat64(a.m.lost); got != 1 {
		t.Fatalf("claims lost = %v", got)
	}
}
