// Package teamsjoin is the worker's driver.Joiner for Microsoft Teams.
// Without teams_settings.use_login a bot joins anonymously. With it, the
// bot takes one of its project's stored accounts (package teamsaccounts:
// least recently used, fleet-wide claims), gets that account's session
// (package teamssession: Redis cache, one login per account across the
// fleet, go-rod login from package teamslogin on a miss) and joins with its
// cookies. login_mode "always" signs in first; "only_if_required" joins
// anonymously and signs in only when the meeting bounces to the login page.
// A signed-in join that bounces anyway invalidates the session and retries
// once with a fresh login. Every failure becomes a jobs.Permanent or
// jobs.Retry value with its public sub_code.
package teamsjoin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/jobs"
	"github.com/usherhq/usher/services/worker/internal/teamsaccounts"
	"github.com/usherhq/usher/services/worker/internal/teamslogin"
	"github.com/usherhq/usher/services/worker/internal/teamssession"
	"github.com/usherhq/usher/shared/botstate"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/teamsaccount"
)

// Login modes of teams_settings.login_mode.
const (
	// ModeAlways signs in before joining (the default with use_login).
	ModeAlways = "always"
	// ModeOnlyIfRequired joins anonymously and signs in only when asked to.
	ModeOnlyIfRequired = "only_if_required"
)

// Config of the Teams joiner.
type Config struct {
	// BusyRetry is how long a job waits, handed back with no bot slot held,
	// when every account of its project is busy. Default 5s.
	BusyRetry time.Duration `env:"USHER_TEAMS_ACCOUNT_BUSY_RETRY" default:"5s"`
	// LoginRetry is the first delay after a login page timed out; it doubles
	// with each consecutive timeout of the account, up to LoginRetryMax. Default 5s.
	LoginRetry time.Duration `env:"USHER_TEAMS_LOGIN_RETRY" default:"5s"`
	// LoginRetryMax caps the login retry delay. Default 2m.
	LoginRetryMax time.Duration `env:"USHER_TEAMS_LOGIN_RETRY_MAX" default:"2m"`
}

// Validate names the bad variable.
func (c Config) Validate() error {
	switch {
	case c.BusyRetry < 100*time.Millisecond:
		return fmt.Errorf("USHER_TEAMS_ACCOUNT_BUSY_RETRY must be ≥ 100ms, got %s", c.BusyRetry)
	case c.LoginRetry < 100*time.Millisecond:
		return fmt.Errorf("USHER_TEAMS_LOGIN_RETRY must be ≥ 100ms, got %s", c.LoginRetry)
	case c.LoginRetryMax < c.LoginRetry:
		return fmt.Errorf("USHER_TEAMS_LOGIN_RETRY_MAX must be ≥ USHER_TEAMS_LOGIN_RETRY (%s), got %s", c.LoginRetry, c.LoginRetryMax)
	}
	return nil
}

// accounts chooses and claims accounts (*teamsaccounts.Accounts).
type accounts interface {
	Claim(ctx context.Context, project, meetingURL, botID string) (*teamsaccounts.Claim, error)
	Password(acct teamsaccounts.Account) (secret.String, error)
	RecordLogin(ctx context.Context, acct teamsaccounts.Account) error
	RecordFailure(ctx context.Context, acct teamsaccounts.Account, f teamsaccounts.Failure) error
}

// sessions is the session cache (*teamssession.Cache).
type sessions interface {
	Get(ctx context.Context, k teamssession.Key, login teamssession.LoginFunc) (*teamssession.Session, error)
	Invalidate(ctx context.Context, k teamssession.Key, s *teamssession.Session)
}

// loginer signs accounts in (*teamslogin.Login).
type loginer interface {
	Login(ctx context.Context, entry string, c teamslogin.Credentials) ([]driver.Cookie, error)
	EntryURL(meetingURL string, simulated bool) string
}

// Joiner joins Teams meetings, signed in when the job asks for it.
type Joiner struct {
	cfg      Config
	driver   driver.Driver
	accounts accounts
	sessions sessions
	login    loginer
	log      *slog.Logger

	mu       sync.Mutex
	timeouts map[string]int // consecutive login timeouts per account, for backoff
}

// New returns a Joiner driving d (the Teams page driver).
func New(cfg Config, d driver.Driver, accts accounts, sess sessions, login loginer, log *slog.Logger) *Joiner {
	return &Joiner{cfg: cfg, driver: d, accounts: accts, sessions: sess, login: login, log: log, timeouts: map[string]int{}}
}

// Join implements driver.Joiner.
func (j *Joiner) Join(ctx context.Context, job *usherv1.JoinJob, w driver.Watcher) (driver.Meeting, error) {
	if p := job.GetPlatform(); p != usherv1.Platform_PLATFORM_TEAMS {
		return nil, jobs.Permanent(botstate.SubInvalidJob, fmt.Errorf("teams joiner given a %s job", p))
	}
	req := driver.RequestFor(job)
	ts := job.GetTeamsSettings()
	if !ts.GetUseLogin() {
		return j.join(ctx, req, w)
	}
	switch mode := ts.GetLoginMode(); mode {
	case "", ModeAlways:
		return j.joinSignedIn(ctx, job, req, w)
	case ModeOnlyIfRequired:
		m, err := j.driver.Join(ctx, req, w)
		if !loginRequired(err) {
			return m, joinError(err)
		}
		j.log.Info("teams meeting requires sign-in, signing in", "bot_id", req.BotID, "project", req.Project)
		return j.joinSignedIn(ctx, job, req, w)
	default:
		return nil, jobs.Permanent(botstate.SubInvalidJob, fmt.Errorf("teams_settings.login_mode must be %s or %s, got %q", ModeAlways, ModeOnlyIfRequired, mode))
	}
}

func (j *Joiner) join(ctx context.Context, req driver.JoinRequest, w driver.Watcher) (driver.Meeting, error) {
	m, err := j.driver.Join(ctx, req, w)
	return m, joinError(err)
}

func joinError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("join teams meeting: %w", err)
}

// loginRequired reports a join that bounced to the Microsoft login page.
func loginRequired(err error) bool {
	var je *driver.JoinError
	return errors.As(err, &je) && je.SubCode == botstate.SubLoginRequired
}

func (j *Joiner) joinSignedIn(ctx context.Context, job *usherv1.JoinJob, req driver.JoinRequest, w driver.Watcher) (driver.Meeting, error) {
	claim, err := j.accounts.Claim(ctx, req.Project, req.MeetingURL, req.BotID)
	switch {
	case errors.Is(err, teamsaccounts.ErrNoAccount):
		return nil, jobs.Permanent(botstate.SubTeamsCredentialsMissing, err)
	case errors.Is(err, teamsaccounts.ErrAllBusy):
		// No slot is held while the job waits; the runtime fails the bot
		// with teams_no_login_available once the join deadline passes.
		return nil, jobs.Retry(j.cfg.BusyRetry, botstate.SubTeamsNoLoginAvailable, err)
	case err != nil:
		return nil, fmt.Errorf("claim a teams account: %w", err)
	}
	acct := claim.Account
	held := false
	defer func() {
		if !held {
			claim.Release()
		}
	}()
	key := teamssession.Key{Project: acct.Project, AccountID: acct.ID, CredentialsVersion: acct.CredentialsVersion}
	login := j.loginFunc(job, acct)
	log := j.log.With("bot_id", req.BotID, "project", req.Project, "account_id", acct.ID)

	for attempt := 1; ; attempt++ {
		sess, err := j.sessions.Get(ctx, key, login)
		if err != nil {
			return nil, j.loginFailure(acct, err)
		}
		log.Debug("teams session ready", "source", string(sess.Source), "attempt", attempt)
		req.Teams = &driver.TeamsIdentity{Account: acct.Email, Cookies: sess.Cookies}
		m, err := j.driver.Join(ctx, req, w)
		if err == nil {
			held = true
			return &claimedMeeting{Meeting: m, claim: claim}, nil
		}
		if !loginRequired(err) || attempt == 2 {
			return nil, joinError(err)
		}
		// The session no longer works (expired or revoked): drop it, and
		// sign in again once.
		log.Info("teams session bounced to the login page, signing in again")
		j.sessions.Invalidate(ctx, key, sess)
	}
}

// errPasswordSealed wraps a stored password that does not open.
var errPasswordSealed = errors.New("stored teams password does not open")

// loginFunc signs acct in for the session cache and records the verdict on
// the account. It runs in at most one worker of the fleet at a time.
func (j *Joiner) loginFunc(job *usherv1.JoinJob, acct teamsaccounts.Account) teamssession.LoginFunc {
	return func(ctx context.Context) ([]driver.Cookie, error) {
		pw, err := j.accounts.Password(acct)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errPasswordSealed, err)
		}
		cookies, err := j.login.Login(ctx, j.login.EntryURL(job.GetMeetingUrl(), job.GetSimulated()), teamslogin.Credentials{
			Project: acct.Project, AccountID: acct.ID, Email: acct.Email, Password: pw,
			ScreenshotName: teamsaccount.ScreenshotName(acct.Project, acct.ID),
		})
		// Record with a context of its own: the verdict matters even when
		// the bot's context just ended.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var le *teamslogin.Error
		switch {
		case err == nil:
			j.resetBackoff(acct.ID)
			if rerr := j.accounts.RecordLogin(rctx, acct); rerr != nil {
				j.log.Warn("record teams login", "account_id", acct.ID, "err", rerr)
			}
			return cookies, nil
		case errors.As(err, &le):
			f := teamsaccounts.Failure{Status: accountStatus(le.Kind), SubCode: le.SubCode(), Screenshot: le.Screenshot}
			if rerr := j.accounts.RecordFailure(rctx, acct, f); rerr != nil && !errors.Is(rerr, teamsaccounts.ErrCredentialsChanged) {
				j.log.Warn("record teams login failure", "account_id", acct.ID, "err", rerr)
			}
			if f.Status != "" {
				j.log.Warn("teams account marked unusable until its credentials change", "project", acct.Project, "account_id", acct.ID, "status", f.Status)
			}
		}
		return nil, err
	}
}

// accountStatus is what a login failure makes of the account: refusals
// about the account park it; captcha and timeouts leave it usable.
func accountStatus(k teamslogin.Kind) string {
	switch k {
	case teamslogin.KindInvalidCredentials:
		return teamsaccount.StatusInvalid
	case teamslogin.KindLocked:
		return teamsaccount.StatusLocked
	case teamslogin.KindMFARequired:
		return teamsaccount.StatusMFARequired
	}
	return ""
}

// loginFailure decides the job's fate when no session could be had.
func (j *Joiner) loginFailure(acct teamsaccounts.Account, err error) error {
	meta := map[string]string{"account_id": acct.ID}
	var le *teamslogin.Error
	var pf *teamssession.PeerFailure
	switch {
	case errors.As(err, &le) && le.Transient():
		return jobs.Retry(j.backoff(acct.ID), le.SubCode(), err)
	case errors.As(err, &le):
		meta["step"] = le.Step
		if le.Screenshot != "" {
			meta["screenshot_url"] = "/api/v1/credentials/teams/" + acct.ID + "/screenshot"
		}
		return jobs.PermanentMeta(le.SubCode(), meta, err)
	case errors.As(err, &pf):
		return jobs.PermanentMeta(pf.Code, meta, err)
	case errors.Is(err, teamssession.ErrWaitTimeout):
		return jobs.Retry(j.cfg.LoginRetry, botstate.SubTeamsLoginFailed, err)
	case errors.Is(err, errPasswordSealed):
		j.log.Error("teams account password does not open: is its key still in USHER_SECRET_KEYS?", "project", acct.Project, "account_id", acct.ID, "err", err)
		return jobs.PermanentMeta(botstate.SubTeamsCredentialsMissing, meta, err)
	}
	return fmt.Errorf("teams session of account %s: %w", acct.ID, err)
}

func (j *Joiner) backoff(accountID string) time.Duration {
	j.mu.Lock()
	n := j.timeouts[accountID]
	j.timeouts[accountID] = n + 1
	j.mu.Unlock()
	d := j.cfg.LoginRetry << min(n, 16)
	if d <= 0 || d > j.cfg.LoginRetryMax {
		d = j.cfg.LoginRetryMax
	}
	return d/2 + rand.N(d/2+1)
}

func (j *Joiner) resetBackoff(accountID string) {
	j.mu.Lock()
	delete(j.timeouts, accountID)
	j.mu.Unlock()
}

// claimedMeeting holds the account claim for as long as the bot is in the
// meeting and releases it on Close.
type claimedMeeting struct {
	driver.Meeting
	claim *teamsaccounts.Claim
}

// Close closes the meeting, then frees the account for other bots.
func (m *claimedMeeting) Close() error {
	err := m.Meeting.Close()
	m.claim.Release()
	return err
}
