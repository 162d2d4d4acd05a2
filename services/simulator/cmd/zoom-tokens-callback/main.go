// Command zoom-tokens-callback is an example of the endpoint a customer runs
// for signed-in Zoom bots (docs/zoom-tokens.md): it verifies Usher's
// signature on the call, picks the Zoom user the bot should sign in as
// (bot_metadata.zoom_user, or a default), asks Zoom's API — here the
// simulator's copy of it — for a fresh ZAK, and answers {"zak_token": ...}.
// `make run` starts it on http://127.0.0.1:8091/zoom-tokens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/usherhq/usher/shared/callbacksig"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/httpserve"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/secret"
)

// Config of the example endpoint.
type Config struct {
	// Addr to listen on. Default 127.0.0.1:8091.
	Addr string `env:"USHER_EXAMPLE_CALLBACK_ADDR" default:"127.0.0.1:8091"`
	// Secret is the project's callback signing secret (what Usher signs with). Required.
	Secret secret.String `env:"USHER_EXAMPLE_CALLBACK_SECRET"`
	// ZoomAPI is Zoom's API base; the simulator's in development. Default http://127.0.0.1:8090/zoom.
	ZoomAPI string `env:"USHER_EXAMPLE_ZOOM_API" default:"http://127.0.0.1:8090/zoom"`
	// DefaultUser is the Zoom user a bot signs in as when its metadata names none. Default notetaker@example.com.
	DefaultUser string `env:"USHER_EXAMPLE_ZOOM_USER" default:"notetaker@example.com"`
	Log         logging.Config
}

func main() {
	var cfg Config
	if err := config.Load(os.LookupEnv, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "zoom-tokens-callback:", err)
		os.Exit(2)
	}
	if cfg.Secret.Empty() {
		fmt.Fprintln(os.Stderr, "zoom-tokens-callback: USHER_EXAMPLE_CALLBACK_SECRET is required")
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.Log, "zoom-tokens-callback")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.Handle("POST /zoom-tokens", handler(cfg, &http.Client{Timeout: 5 * time.Second}, log))
	mux.Handle("GET /healthz", httpserve.Healthz())
	if err := httpserve.Run(ctx, cfg.Addr, mux, 5*time.Second, log); err != nil {
		log.Error("zoom-tokens-callback stopped", "error", err)
		os.Exit(1)
	}
}

func handler(cfg Config, client *http.Client, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := callbacksig.VerifyUsherCallback(cfg.Secret.Reveal(), r.Header, body, time.Now()); err != nil {
			log.Warn("refused an unsigned or stale call", "error", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var call struct {
			BotID       string            `json:"bot_id"`
			BotMetadata map[string]string `json:"bot_metadata"`
			MeetingURL  string            `json:"meeting_url"`
		}
		if err := json.Unmarshal(body, &call); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		user := call.BotMetadata["zoom_user"]
		if user == "" {
			user = cfg.DefaultUser
		}
		zak, err := mintZAK(r.Context(), client, cfg.ZoomAPI, user)
		if err != nil {
			log.Error("mint zak", "bot_id", call.BotID, "error", err)
			http.Error(w, "zoom api unavailable", http.StatusBadGateway)
			return
		}
		log.Info("zak issued", "bot_id", call.BotID, "zoom_user", user)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"zak_token": zak})
	})
}

// mintZAK calls GET /v2/users/{userId}/token?type=zak, Zoom's own endpoint.
func mintZAK(ctx context.Context, client *http.Client, api, user string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/v2/users/"+url.PathEscape(user)+"/token?type=zak", nil)
	if err != nil {
		return "", err
	}
	// A real endpoint sends its Zoom OAuth access token here.
	req.Header.Set("Authorization", "Bearer example-oauth-token")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("zoom api answered %d", resp.StatusCode)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil || out.Token == "" {
		return "", errors.New("zoom api answer has no token")
	}
	return out.Token, nil
}
