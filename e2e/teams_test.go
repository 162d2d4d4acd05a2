package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/shared/secret"
)

// Projects of the Teams login tests: Teams accounts are stored per project,
// so each test has one to itself.
const (
	projectTeamsSignedIn      = "teams-signed-in"
	projectTeamsWrongPassword = "teams-wrong-password"
	projectTeamsNoAccount     = "teams-no-account"
)

// teamsAccount is the credentials API's view of a stored account.
type teamsAccount struct {
	ID             string  `json:"id"`
	Email          string  `json:"email"`
	Status         string  `json:"status"`
	LastUsedAt     *string `json:"last_used_at"`
	LastLoginAt    *string `json:"last_login_at"`
	LastLoginError *string `json:"last_login_error"`
	ScreenshotURL  *string `json:"screenshot_url"`
}

// putTeamsCredentials stores an account's credentials for c's project.
func putTeamsCredentials(t *testing.T, ctx context.Context, c *fleet.Client, email, password string) teamsAccount {
	t.Helper()
	status, body, err := c.Do(ctx, http.MethodPut, "/api/v1/credentials/teams", map[string]string{"email": email, "password": password})
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusCreated {
		t.Fatalf("PUT /api/v1/credentials/teams: %d %s, want 201", status, body)
	}
	if strings.Contains(string(body), password) {
		t.Fatal("the credentials API echoed the password")
	}
	var a teamsAccount
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	// The project's accounts are the test's alone: leave none behind for
	// the next run (-count) to pick.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		status, body, err := c.Do(ctx, http.MethodDelete, "/api/v1/credentials/teams/"+a.ID, nil)
		if err != nil || status != http.StatusNoContent {
			t.Errorf("DELETE /api/v1/credentials/teams/%s: %d %s %v", a.ID, status, body, err)
		}
	})
	return a
}

// teamsAccounts lists c's project's accounts, checking no password is in the answer.
func teamsAccounts(t *testing.T, ctx context.Context, c *fleet.Client, passwords ...string) []teamsAccount {
	t.Helper()
	status, body, err := c.Do(ctx, http.MethodGet, "/api/v1/credentials/teams", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /api/v1/credentials/teams: %d %s %v", status, body, err)
	}
	for _, pw := range passwords {
		if strings.Contains(string(body), pw) {
			t.Fatal("GET /api/v1/credentials/teams shows a password")
		}
	}
	var out struct {
		Results []teamsAccount `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Results
}

// newMicrosoftAccount creates a bot account in the simulator's Microsoft
// login and returns its email, password and display name.
func newMicrosoftAccount(t *testing.T) (email, password, display string) {
	t.Helper()
	tag := strings.ToLower(rand.Text()[:8])
	email, password, display = "notetaker-"+tag+"@contoso.test", "Pw-"+rand.Text(), "Contoso Notetaker "+tag
	if _, err := fl.Sim.PutMicrosoftAccount(sim.MicrosoftAccount{Email: email, Password: secret.String(password), DisplayName: display}); err != nil {
		t.Fatal(err)
	}
	return email, password, display
}

// TestTeamsSignedIn: with stored credentials, a bot with
// teams_settings.use_login joins an org-only meeting as the account (listed
// by its email, not as a guest); a second bot in another meeting reuses the
// session (no second Microsoft login); login_mode only_if_required joins a
// public meeting as a guest and an org-only one signed in; a session
// Microsoft ended is dropped and replaced by one new login; and the password
// and the session cookies appear nowhere a user or operator can read.
func TestTeamsSignedIn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(projectTeamsSignedIn)
	email, password, display := newMicrosoftAccount(t)
	acct := putTeamsCredentials(t, ctx, c, email, password)
	if acct.Status != "ok" {
		t.Fatalf("stored account status %q, want ok", acct.Status)
	}
	start := fl.Sim.Stats().MicrosoftLogins
	wantLogins := func(want int, after string) {
		t.Helper()
		if got := fl.Sim.Stats().MicrosoftLogins - start; got != want {
			t.Fatalf("%d Microsoft logins after %s, want %d", got, after, want)
		}
	}
	// join runs a bot into a new meeting and checks who the simulator lists.
	join := func(orgOnly bool, settings map[string]any, wantName, wantIdentity string) fleet.Bot {
		t.Helper()
		m := newMeeting(t, sim.MeetingSpec{Platform: sim.Teams, AuthRequired: orgOnly})
		bot := createBot(t, ctx, c, map[string]any{"meeting_url": m.URL, "bot_name": wantName, "teams_settings": settings})
		joined := waitState(t, ctx, c, bot.ID, "joined", joinTimeout)
		wantOutcome(t, joined, "joined", "", "joining", "joined")
		if wantIdentity != sim.IdentityAnonymous {
			wantName = display // a signed-in participant shows the account's name
		}
		if p := waitParticipant(t, ctx, m.ID, wantName, sim.StateInMeeting); p.Identity != wantIdentity {
			t.Fatalf("simulator lists the bot as %q, want %q", p.Identity, wantIdentity)
		}
		return joined
	}
	leaveAll := func(bots ...fleet.Bot) {
		t.Helper()
		for _, b := range bots {
			if status, body := leave(t, ctx, c, b.ID); status != http.StatusOK {
				t.Fatalf("leave %s: %d %v", b.ID, status, body)
			}
			waitState(t, ctx, c, b.ID, "ended", endTimeout)
		}
	}

	first := join(true, map[string]any{"use_login": true}, uniqueName("Notetaker"), email)
	wantLogins(1, "the first bot")
	second := join(true, map[string]any{"use_login": true, "login_mode": "always"}, uniqueName("Notetaker"), email)
	wantLogins(1, "a second bot (the session is reused)")
	accts := teamsAccounts(t, ctx, c, password)
	if len(accts) != 1 || accts[0].Status != "ok" || accts[0].LastLoginAt == nil || accts[0].LastUsedAt == nil {
		t.Fatalf("accounts after the joins: %+v, want one ok account with last_login_at and last_used_at", accts)
	}
	leaveAll(first, second)

	ifRequired := map[string]any{"use_login": true, "login_mode": "only_if_required"}
	guest := join(false, ifRequired, uniqueName("Guest notetaker"), sim.IdentityAnonymous)
	member := join(true, ifRequired, uniqueName("Notetaker"), email)
	wantLogins(1, "only_if_required bots")
	leaveAll(guest, member)

	// Microsoft ends the account's sessions: the cached one now bounces to
	// the login page; the bot drops it, signs in once more and joins.
	if n, err := fl.Sim.ExpireMicrosoftSessions(email); err != nil || n == 0 {
		t.Fatalf("expire sessions: %d %v", n, err)
	}
	again := join(true, map[string]any{"use_login": true}, uniqueName("Notetaker"), email)
	wantLogins(2, "the session expired")
	leaveAll(again)

	var cookies []string
	for _, ck := range fl.SimCookies() {
		if strings.HasPrefix(ck.Name, sim.CookieESTSAuth) && ck.Value != "" {
			cookies = append(cookies, ck.Value)
		}
	}
	if len(cookies) < 2 {
		t.Fatalf("the simulator set %d Microsoft session cookies, want those of two logins", len(cookies))
	}
	scanForSecrets(t, ctx, first.ID, map[string]string{"teams password": password}, cookieSecrets(cookies))
}

// TestTeamsWrongPassword: stored credentials Microsoft refuses →
// failed/teams_login_invalid_credentials, and the credentials API shows the
// account invalid; the typed password is never shown.
func TestTeamsWrongPassword(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(projectTeamsWrongPassword)
	email, _, _ := newMicrosoftAccount(t)
	wrong := "Wrong-" + rand.Text()
	acct := putTeamsCredentials(t, ctx, c, email, wrong)
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Teams, AuthRequired: true})
	failures := fl.Sim.Stats().MicrosoftLoginFailures

	bot := createBot(t, ctx, c, map[string]any{
		"meeting_url":    m.URL,
		"bot_name":       uniqueName("Locked out"),
		"teams_settings": map[string]any{"use_login": true},
	})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "teams_login_invalid_credentials", "joining", "failed")
	if got := lastEvent(t, failed).Metadata["account_id"]; got != acct.ID {
		t.Fatalf("failed event account_id %q, want %q", got, acct.ID)
	}
	if fl.Sim.Stats().MicrosoftLoginFailures <= failures {
		t.Fatal("the simulator saw no refused login")
	}
	accts := teamsAccounts(t, ctx, c, wrong)
	if len(accts) != 1 || accts[0].ID != acct.ID || accts[0].Status != "invalid" {
		t.Fatalf("accounts after the refused login: %+v, want %s invalid", accts, acct.ID)
	}
	if e := accts[0].LastLoginError; e == nil || *e != "teams_login_invalid_credentials" {
		t.Fatalf("last_login_error %v, want teams_login_invalid_credentials", e)
	}
	// The page where the login failed can be downloaded, as the event and
	// the account say.
	shot := accts[0].ScreenshotURL
	if shot == nil || lastEvent(t, failed).Metadata["screenshot_url"] != *shot || lastEvent(t, failed).Metadata["step"] == "" {
		t.Fatalf("screenshot_url %v, failed event metadata %v: want the same screenshot_url and a step", shot, lastEvent(t, failed).Metadata)
	}
	status, img, err := c.Do(ctx, http.MethodGet, *shot, nil)
	if err != nil || status != http.StatusOK || !bytes.HasPrefix(img, []byte{0xFF, 0xD8, 0xFF}) {
		t.Fatalf("GET %s: %d, %d bytes (%v), want a JPEG", *shot, status, len(img), err)
	}
	wantOnlyHumans(t, m.ID)
	scanForSecrets(t, ctx, bot.ID, map[string]string{"wrong teams password": wrong})
}

// TestTeamsCredentialsMissing: use_login in a project without stored
// accounts → failed/teams_credentials_missing, at once and without a login.
func TestTeamsCredentialsMissing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(projectTeamsNoAccount)
	if accts := teamsAccounts(t, ctx, c); len(accts) != 0 {
		t.Fatalf("project %s has accounts: %+v", projectTeamsNoAccount, accts)
	}
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Teams})
	bot := createBot(t, ctx, c, map[string]any{
		"meeting_url":    m.URL,
		"bot_name":       uniqueName("No account"),
		"teams_settings": map[string]any{"use_login": true},
	})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "teams_credentials_missing", "joining", "failed")
	wantOnlyHumans(t, m.ID)
}

// cookieSecrets names each cookie value for scanForSecrets.
func cookieSecrets(values []string) map[string]string {
	out := map[string]string{}
	for i, v := range values {
		out["microsoft session cookie #"+strconv.Itoa(i+1)] = v
	}
	return out
}
