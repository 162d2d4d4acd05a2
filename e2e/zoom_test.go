package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

// wantCallbackBody checks a call's body byte for byte against the contract:
// one compact JSON object, keys bot_id, bot_metadata, callback_type,
// meeting_url in that order.
func wantCallbackBody(t *testing.T, got []byte, bot fleet.Bot) {
	t.Helper()
	var meta any
	if len(bot.Metadata) > 0 {
		meta = bot.Metadata
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		BotID        string `json:"bot_id"`
		BotMetadata  any    `json:"bot_metadata"`
		CallbackType string `json:"callback_type"`
		MeetingURL   string `json:"meeting_url"`
	}{bot.ID, meta, "zoom_tokens", bot.MeetingURL}); err != nil {
		t.Fatal(err)
	}
	if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
		t.Fatalf("callback body\n got %s\nwant %s", got, w)
	}
}

// TestZoomSignedIn: a bot with callback_settings.zoom_tokens_url joins an
// "authenticated users only" Zoom meeting as the Zoom user whose ZAK the
// customer's endpoint minted. The endpoint verifies the signature exactly as
// docs/zoom-tokens.md says and receives exactly the documented body; a
// second bot gets a fresh call (never a cached token); and no token shows up
// in logs, events, bot documents or /metrics.
func TestZoomSignedIn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	user := sim.ZoomUser{ID: "u-" + strings.ToLower(rand.Text()[:10]), DisplayName: uniqueName("Acme Notetaker")}
	if _, err := fl.Sim.PutZoomUser(user); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		tokens []string
	)
	endpoint := newTokensEndpoint(t, c.CallbackSecret, func(body []byte) (int, string) {
		var call struct {
			BotMetadata map[string]string `json:"bot_metadata"`
		}
		if err := json.Unmarshal(body, &call); err != nil || call.BotMetadata["zoom_user"] == "" {
			return http.StatusBadRequest, `{"error":"which user?"}`
		}
		zak, err := fl.Sim.MintZoomToken(call.BotMetadata["zoom_user"], sim.TokenZAK)
		if err != nil {
			return http.StatusInternalServerError, `{"error":"mint"}`
		}
		mu.Lock()
		tokens = append(tokens, zak)
		mu.Unlock()
		answer, _ := json.Marshal(map[string]string{"zak_token": zak})
		return http.StatusOK, string(answer)
	})

	var bots []fleet.Bot
	for i := range 2 {
		m := newMeeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
		bot := createBot(t, ctx, c, map[string]any{
			"meeting_url":       m.URL,
			"bot_name":          uniqueName("Ignored name"),
			"metadata":          map[string]string{"zoom_user": user.ID, "attempt": strconv.Itoa(i + 1)},
			"callback_settings": map[string]any{"zoom_tokens_url": endpoint.URL()},
		})
		joined := waitState(t, ctx, c, bot.ID, "joined", joinTimeout)
		wantOutcome(t, joined, "joined", "", "joining", "joined")
		// The name shown is the Zoom user's, and the identity is the user.
		if p := waitParticipant(t, ctx, m.ID, user.DisplayName, sim.StateInMeeting); p.Identity != user.ID {
			t.Fatalf("simulator lists the bot as %q, want Zoom user %q", p.Identity, user.ID)
		}

		calls := endpoint.Calls()
		if len(calls) != i+1 {
			t.Fatalf("after bot %d joined the endpoint had %d calls, want %d (one fresh call per join)", i+1, len(calls), i+1)
		}
		call := calls[i]
		if !call.Verified {
			t.Fatalf("call %d did not verify with the project's secret (X-Usher-Signature %q)", i+1, call.Header.Get("X-Usher-Signature"))
		}
		if ct := call.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("call Content-Type %q, want application/json", ct)
		}
		wantCallbackBody(t, call.Body, bot)
		bots = append(bots, bot)
	}
	mu.Lock()
	minted := append([]string(nil), tokens...)
	mu.Unlock()
	if len(minted) != 2 || minted[0] == minted[1] {
		t.Fatalf("minted %d tokens, want 2 distinct ones", len(minted))
	}

	for _, b := range bots {
		if status, body := leave(t, ctx, c, b.ID); status != http.StatusOK {
			t.Fatalf("leave %s: %d %v", b.ID, status, body)
		}
		ended := waitState(t, ctx, c, b.ID, "ended", endTimeout)
		wantOutcome(t, ended, "ended", "user_requested", "joining", "joined", "leaving", "ended")
	}
	scanForSecrets(t, ctx, bots[0].ID, map[string]string{"first ZAK": minted[0], "second ZAK": minted[1]})
}

// TestZoomCallbackRefused: an endpoint that refuses the call (here with the
// 401 docs/zoom-tokens.md prescribes for a signature that does not verify:
// it holds another secret) → failed/zoom_tokens_callback_failed with status
// 401 in the event metadata, after exactly one call (4xx is never retried).
func TestZoomCallbackRefused(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	endpoint := newTokensEndpoint(t, "not-the-project-secret-"+rand.Text(), func([]byte) (int, string) {
		t.Error("a call verified with the wrong secret")
		return http.StatusOK, `{"zak_token":"x"}`
	})
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	bot := createBot(t, ctx, c, map[string]any{
		"meeting_url":       m.URL,
		"bot_name":          uniqueName("Refused"),
		"callback_settings": map[string]any{"zoom_tokens_url": endpoint.URL()},
	})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "zoom_tokens_callback_failed", "joining", "failed")
	if got := lastEvent(t, failed).Metadata["status"]; got != "401" {
		t.Fatalf("failed event metadata %v, want status 401", lastEvent(t, failed).Metadata)
	}
	calls := endpoint.Calls()
	if len(calls) != 1 || calls[0].Status != http.StatusUnauthorized {
		t.Fatalf("the endpoint got %d calls, want exactly 1 refused with 401", len(calls))
	}
	wantCallbackBody(t, calls[0].Body, bot)
	wantOnlyHumans(t, m.ID)
}

// TestZoomCallbackInvalidJSON: a 200 whose body is not strict JSON →
// failed/zoom_tokens_invalid_response, without retrying.
func TestZoomCallbackInvalidJSON(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	endpoint := newTokensEndpoint(t, c.CallbackSecret, func([]byte) (int, string) {
		return http.StatusOK, `{"zak_token": "abc",}`
	})
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	bot := createBot(t, ctx, c, map[string]any{
		"meeting_url":       m.URL,
		"bot_name":          uniqueName("Confused"),
		"callback_settings": map[string]any{"zoom_tokens_url": endpoint.URL()},
	})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "zoom_tokens_invalid_response", "joining", "failed")
	if got := lastEvent(t, failed).Metadata["reason"]; got != "invalid_json" {
		t.Fatalf("failed event metadata %v, want reason invalid_json", lastEvent(t, failed).Metadata)
	}
	if calls := endpoint.Calls(); len(calls) != 1 || !calls[0].Verified {
		t.Fatalf("the endpoint got %d calls, want exactly 1 verified", len(calls))
	}
	wantOnlyHumans(t, m.ID)
}

// TestZoomTokenRejectedByZoom: the endpoint answers a well-formed ZAK that
// Zoom does not accept (expired, another account's...) → the web client
// shows its 4013 error and the bot fails with login_required; the refused
// token is not logged or reported either.
func TestZoomTokenRejectedByZoom(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := fl.As(fleet.Project)
	bogus := "zak-" + rand.Text() + rand.Text()
	endpoint := newTokensEndpoint(t, c.CallbackSecret, func([]byte) (int, string) {
		return http.StatusOK, `{"zak_token":"` + bogus + `"}`
	})
	rejections := fl.Sim.Stats().ZAKRejections
	m := newMeeting(t, sim.MeetingSpec{Platform: sim.Zoom, AuthRequired: true})
	bot := createBot(t, ctx, c, map[string]any{
		"meeting_url":       m.URL,
		"bot_name":          uniqueName("Expired"),
		"callback_settings": map[string]any{"zoom_tokens_url": endpoint.URL()},
	})
	failed := waitFinished(t, ctx, c, bot.ID, joinTimeout)
	wantOutcome(t, failed, "failed", "login_required", "joining", "failed")
	if fl.Sim.Stats().ZAKRejections <= rejections {
		t.Fatal("the simulator never saw the token: the bot failed before presenting it")
	}
	if calls := endpoint.Calls(); len(calls) != 1 {
		t.Fatalf("the endpoint got %d calls, want 1", len(calls))
	}
	wantOnlyHumans(t, m.ID)
	scanForSecrets(t, ctx, bot.ID, map[string]string{"rejected ZAK": bogus})
}
