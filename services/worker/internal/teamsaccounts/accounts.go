// Package teamsaccounts chooses the Teams bot account a bot signs in with,
// and keeps the fleet-wide rules about it: an account is in a given meeting
// at most once, and in at most MaxBotsPerAccount meetings at a time. Both
// are claims in the ACCOUNT_LEASES bucket (KV Create, so exactly one worker
// wins), renewed by a heartbeat and expiring with the bucket's TTL when a
// worker dies. It also records what logins teach about an account (invalid,
// locked, MFA) in TEAMS_ACCOUNTS, so an account Microsoft refused is not
// tried again until its credentials change. The stored record is package
// teamsaccount in shared; the worker writes only the fields it owns, with
// teamsaccount.Patch, so fields it does not know survive.
package teamsaccounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/teamsaccount"
)

// Config of account choice.
type Config struct {
	// MaxBotsPerAccount bounds the bots signed in with one account at the
	// same time, across meetings, fleet-wide. Every worker must use the same
	// value. Default 4.
	MaxBotsPerAccount int `env:"USHER_TEAMS_ACCOUNT_MAX_BOTS" default:"4"`
}

// Validate names the bad variable.
func (c Config) Validate() error {
	if c.MaxBotsPerAccount < 1 || c.MaxBotsPerAccount > 1000 {
		return fmt.Errorf("USHER_TEAMS_ACCOUNT_MAX_BOTS must be 1-1000, got %d", c.MaxBotsPerAccount)
	}
	return nil
}

// Errors of Claim.
var (
	// ErrNoAccount: the project has no Teams account, or none is healthy
	// (every one is invalid, locked or needs MFA).
	ErrNoAccount = errors.New("no usable teams account")
	// ErrAllBusy: every healthy account is already in this meeting or at its
	// limit of concurrent bots. Retry later.
	ErrAllBusy = errors.New("every teams account is busy")
	// ErrCredentialsChanged: the account's credentials were replaced (or the
	// account deleted) since it was chosen; its verdict was not recorded.
	ErrCredentialsChanged = errors.New("teams account credentials changed")
)

// Account is a chosen account, without its password.
type Account struct {
	Project string
	ID      string
	Email   string
	// CredentialsVersion identifies the password the account was chosen
	// with; status updates apply only while it is current.
	CredentialsVersion string
	sealedPassword     string
}

// Accounts reads accounts and claims them.
type Accounts struct {
	cfg      Config
	accounts jetstream.KeyValue
	leases   jetstream.KeyValue
	ring     *sealbox.Ring
	log      *slog.Logger
	m        *metrics
	now      func() time.Time

	ttlMu sync.Mutex
	ttl   time.Duration
}

type metrics struct {
	claims *prometheus.CounterVec
	lost   prometheus.Counter
}

// New returns an Accounts over the TEAMS_ACCOUNTS and ACCOUNT_LEASES buckets.
func New(cfg Config, accounts, leases jetstream.KeyValue, ring *sealbox.Ring, log *slog.Logger, reg prometheus.Registerer) *Accounts {
	f := promauto.With(reg)
	m := &metrics{
		claims: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_worker_teams_account_claims_total",
			Help: "Teams account claims by result: claimed, busy (every account in the meeting or at its limit), none (no healthy account).",
		}, []string{"result"}),
		lost: f.NewCounter(prometheus.CounterOpts{
			Name: "usher_worker_teams_account_claims_lost_total",
			Help: "Teams account claims that expired or were taken over while a bot held them.",
		}),
	}
	for _, r := range []string{"claimed", "busy", "none"} {
		m.claims.WithLabelValues(r)
	}
	return &Accounts{cfg: cfg, accounts: accounts, leases: leases, ring: ring, log: log, m: m, now: time.Now}
}

// healthy lists project's accounts with status ok, least recently used first.
func (a *Accounts) healthy(ctx context.Context, project string) ([]Account, error) {
	entries, err := a.scan(ctx, project)
	if err != nil {
		return nil, err
	}
	type cand struct {
		acct Account
		used time.Time
	}
	var cands []cand
	for _, e := range entries {
		r, err := teamsaccount.Decode(e.Value())
		if err != nil {
			a.log.Warn("undecodable teams account record", "project", project, "key", e.Key(), "err", err)
			continue
		}
		if r.Status != teamsaccount.StatusOK || r.SealedPassword == "" {
			continue
		}
		cands = append(cands, cand{Account{Project: project, ID: r.ID, Email: r.Email,
			CredentialsVersion: r.CredentialsVersion, sealedPassword: r.SealedPassword}, r.LastUsedAt})
	}
	slices.SortFunc(cands, func(x, y cand) int {
		if c := x.used.Compare(y.used); c != 0 {
			return c
		}
		return strings.Compare(x.acct.ID, y.acct.ID)
	})
	out := make([]Account, len(cands))
	for i, c := range cands {
		out[i] = c.acct
	}
	return out, nil
}

// scan reads the current record of every account of project with one watcher.
func (a *Accounts) scan(ctx context.Context, project string) ([]jetstream.KeyValueEntry, error) {
	w, err := a.accounts.WatchFiltered(ctx, []string{project + ".*"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list teams accounts of %s: %w", project, err)
	}
	defer func() { _ = w.Stop() }()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // every current record has been delivered
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("list teams accounts of %s: %w", project, ctx.Err())
		}
	}
}

// Claim chooses the least recently used healthy account of project that is
// not yet in meetingURL and has a free slot, and claims both fleet-wide.
// ErrNoAccount when the project has no healthy account, ErrAllBusy when
// every one is taken. The caller must Release the claim.
func (a *Accounts) Claim(ctx context.Context, project, meetingURL, botID string) (*Claim, error) {
	accts, err := a.healthy(ctx, project)
	if err != nil {
		return nil, err
	}
	if len(accts) == 0 {
		a.m.claims.WithLabelValues("none").Inc()
		return nil, fmt.Errorf("project %s: %w", project, ErrNoAccount)
	}
	ttl, err := a.leaseTTL(ctx)
	if err != nil {
		return nil, err
	}
	holder, err := json.Marshal(claimValue{BotID: botID, At: a.now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("encode claim: %w", err)
	}
	for _, acct := range accts {
		keys, err := a.tryClaim(ctx, acct, meetingURL, holder)
		if errors.Is(err, ErrAllBusy) {
			continue
		}
		if err != nil {
			return nil, err
		}
		a.m.claims.WithLabelValues("claimed").Inc()
		a.touch(ctx, acct)
		return newClaim(acct, a.leases, keys, holder, ttl, a.log, a.m.lost), nil
	}
	a.m.claims.WithLabelValues("busy").Inc()
	return nil, fmt.Errorf("project %s, %d accounts: %w", project, len(accts), ErrAllBusy)
}

// claimValue is what a claim key holds: which bot holds it, since when.
type claimValue struct {
	BotID string    `json:"bot_id"`
	At    time.Time `json:"at"`
}

// Lease keys. They use the account id alone (derived from the email, the
// same in every project), so the rules hold per Microsoft account even when
// two projects store the same one.
func meetingKey(accountID, meetingURL string) string {
	return "m." + accountID + "." + meetingToken(meetingURL)
}

func slotKey(accountID string, slot int) string { return fmt.Sprintf("s.%s.%d", accountID, slot) }

// meetingToken turns a meeting URL into one KV key token.
func meetingToken(meetingURL string) string {
	sum := sha256.Sum256([]byte(meetingURL))
	return hex.EncodeToString(sum[:16])
}

func (a *Accounts) tryClaim(ctx context.Context, acct Account, meetingURL string, holder []byte) ([]heldKey, error) {
	mk := meetingKey(acct.ID, meetingURL)
	mrev, err := a.leases.Create(ctx, mk, holder)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, ErrAllBusy
	}
	if err != nil {
		return nil, fmt.Errorf("claim account %s in meeting: %w", acct.ID, err)
	}
	n := a.cfg.MaxBotsPerAccount
	start := rand.IntN(n) // spread concurrent claimers over the slots
	for i := range n {
		sk := slotKey(acct.ID, (start+i)%n)
		srev, err := a.leases.Create(ctx, sk, holder)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			a.deleteKey(mk, mrev)
			return nil, fmt.Errorf("claim a slot of account %s: %w", acct.ID, err)
		}
		return []heldKey{{key: mk, rev: mrev}, {key: sk, rev: srev}}, nil
	}
	a.deleteKey(mk, mrev)
	return nil, ErrAllBusy
}

// deleteKey releases a claim key if it is still ours. It runs on paths where
// the caller's context may be done, so it has its own short deadline.
func (a *Accounts) deleteKey(key string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.leases.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		a.log.Warn("release teams account claim key", "key", key, "err", err)
	}
}

// leaseTTL is the ACCOUNT_LEASES bucket's TTL: claims not renewed within
// it expire. Read once.
func (a *Accounts) leaseTTL(ctx context.Context) (time.Duration, error) {
	a.ttlMu.Lock()
	defer a.ttlMu.Unlock()
	if a.ttl > 0 {
		return a.ttl, nil
	}
	st, err := a.leases.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("read account leases bucket: %w", err)
	}
	if st.TTL() <= 0 {
		return 0, errors.New("account leases bucket has no TTL: claims of a dead worker would never expire")
	}
	a.ttl = st.TTL()
	return a.ttl, nil
}

// Password opens the account's sealed password.
func (a *Accounts) Password(acct Account) (secret.String, error) {
	pw, err := a.ring.Open(acct.sealedPassword, teamsaccount.PasswordContext(acct.Project, acct.ID))
	if err != nil {
		return "", fmt.Errorf("open password of account %s: %w", acct.ID, err)
	}
	return secret.String(pw), nil
}

// touch records that a bot just took the account (LRU order). Best effort:
// a lost race only makes the order slightly less fair.
func (a *Accounts) touch(ctx context.Context, acct Account) {
	err := a.update(ctx, acct, map[string]any{teamsaccount.FieldLastUsedAt: a.now().UTC()})
	if err != nil && !errors.Is(err, ErrCredentialsChanged) {
		a.log.Warn("record teams account use", "project", acct.Project, "account_id", acct.ID, "err", err)
	}
}

// RecordLogin notes a successful login.
func (a *Accounts) RecordLogin(ctx context.Context, acct Account) error {
	return a.update(ctx, acct, map[string]any{teamsaccount.FieldLastLoginAt: a.now().UTC()})
}

// Failure is what a failed login teaches about an account.
type Failure struct {
	// Status is the account's new status (a teamsaccount.Status*); empty
	// leaves it (captcha, timeouts).
	Status string
	// SubCode is the bot's failure sub_code, shown as the account's last login error.
	SubCode string
	// Screenshot names the stored screenshot of the failed page; empty if none.
	Screenshot string
}

// RecordFailure notes a failed login. It changes nothing, and returns
// ErrCredentialsChanged, when the credentials were replaced since the
// account was chosen: the verdict was about the old password.
func (a *Accounts) RecordFailure(ctx context.Context, acct Account, f Failure) error {
	now := a.now().UTC()
	fields := map[string]any{teamsaccount.FieldLastFailureCode: f.SubCode, teamsaccount.FieldLastFailureAt: now}
	if f.Status != "" {
		fields[teamsaccount.FieldStatus] = f.Status
		fields[teamsaccount.FieldStatusChangedAt] = now
	}
	if f.Screenshot != "" {
		fields[teamsaccount.FieldScreenshot] = f.Screenshot
	}
	return a.update(ctx, acct, fields)
}

const maxCASAttempts = 8

// update patches the account's record with a compare-and-set, only while
// its credentials are the ones acct was chosen with. Every field it does not
// set, known or not, stays as stored.
func (a *Accounts) update(ctx context.Context, acct Account, fields map[string]any) error {
	key := teamsaccount.Key(acct.Project, acct.ID)
	for range maxCASAttempts {
		e, err := a.accounts.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("account %s: %w", acct.ID, ErrCredentialsChanged)
		}
		if err != nil {
			return fmt.Errorf("read account %s: %w", acct.ID, err)
		}
		cur, err := teamsaccount.Decode(e.Value())
		if err != nil {
			return fmt.Errorf("account %s: %w", acct.ID, err)
		}
		if cur.CredentialsVersion != acct.CredentialsVersion {
			return fmt.Errorf("account %s: %w", acct.ID, ErrCredentialsChanged)
		}
		data, err := teamsaccount.Patch(e.Value(), fields)
		if err != nil {
			return fmt.Errorf("account %s: %w", acct.ID, err)
		}
		if _, err := a.accounts.Update(ctx, key, data, e.Revision()); errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		} else if err != nil {
			return fmt.Errorf("update account %s: %w", acct.ID, err)
		}
		return nil
	}
	return fmt.Errorf("update account %s: record kept changing", acct.ID)
}
