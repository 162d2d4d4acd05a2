package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/topology"
)

// Client calls the fleet's API as one project.
type Client struct {
	f *Fleet
	// Project is the project the client acts for.
	Project string
	// APIKey is the project's API key.
	APIKey string
	// CallbackSecret signs the project's zoom_tokens_url calls.
	CallbackSecret string
}

// As returns the client of project: Project or one of Options.Projects. It
// returns nil for a project the fleet does not serve.
func (f *Fleet) As(project string) *Client {
	return f.projects[project]
}

// Projects lists the projects the fleet serves, sorted.
func (f *Fleet) Projects() []string {
	return slices.Sorted(maps.Keys(f.projects))
}

// addProjects registers Project and the extra projects and returns the
// USHER_API_KEYS and USHER_CALLBACK_SECRETS values serving them.
func (f *Fleet) addProjects(extra []string) (apiKeys, callbackSecrets string, err error) {
	f.projects = map[string]*Client{
		Project: {f: f, Project: Project, APIKey: f.APIKey, CallbackSecret: f.CallbackSecret},
	}
	for _, p := range extra {
		if !topology.ValidProject(p) {
			return "", "", fmt.Errorf("project %q: lowercase letters, digits, - or _", p)
		}
		if _, dup := f.projects[p]; dup {
			return "", "", fmt.Errorf("project %q given twice", p)
		}
		f.projects[p] = &Client{
			f:              f,
			Project:        p,
			APIKey:         p + "-" + randomString(24),
			CallbackSecret: p + "-callback-" + randomString(20),
		}
	}
	var keys, secrets []string
	for _, p := range slices.Sorted(maps.Keys(f.projects)) {
		c := f.projects[p]
		keys = append(keys, p+":"+c.APIKey)
		secrets = append(secrets, p+":"+c.CallbackSecret)
	}
	return strings.Join(keys, ","), strings.Join(secrets, ","), nil
}

// workerEnv is the environment workers are configured from: the fleet's,
// then Options.WorkerEnv.
func (f *Fleet) workerEnv() map[string]string {
	env := maps.Clone(f.env)
	maps.Copy(env, f.opts.WorkerEnv)
	return env
}

// Do calls the API as the client's project and returns the status and body.
func (c *Client) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.f.API+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Token "+c.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// CreateBot posts a bot request; it returns the bot on 201, else an error with the body.
func (c *Client) CreateBot(ctx context.Context, req map[string]any) (Bot, error) {
	status, body, err := c.Do(ctx, http.MethodPost, "/api/v1/bots", req)
	if err != nil {
		return Bot{}, err
	}
	if status != http.StatusCreated {
		return Bot{}, fmt.Errorf("create bot: %d %s", status, body)
	}
	var b Bot
	return b, json.Unmarshal(body, &b)
}

// GetBot reads a bot through the API.
func (c *Client) GetBot(ctx context.Context, id string) (Bot, error) {
	status, body, err := c.Do(ctx, http.MethodGet, "/api/v1/bots/"+id, nil)
	if err != nil {
		return Bot{}, err
	}
	if status != http.StatusOK {
		return Bot{}, fmt.Errorf("get bot %s: %d %s", id, status, body)
	}
	var b Bot
	return b, json.Unmarshal(body, &b)
}

// WaitBot polls the API until cond holds for the bot, and returns it.
func (c *Client) WaitBot(ctx context.Context, id string, timeout time.Duration, cond func(Bot) bool) (Bot, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last Bot
	for {
		b, err := c.GetBot(ctx, id)
		if err == nil {
			last = b
			if cond(b) {
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("bot %s: %w (last state %q, events %v)", id, ErrTimeout, last.State, last.States())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitState waits until the bot is in state.
func (c *Client) WaitState(ctx context.Context, id, state string, timeout time.Duration) (Bot, error) {
	return c.WaitBot(ctx, id, timeout, func(b Bot) bool { return b.State == state })
}

// Events reads every event of one of the client's bots straight from the
// EVENTS stream, in order.
func (c *Client) Events(ctx context.Context, botID string) ([]*usherv1.BotEvent, error) {
	var out []*usherv1.BotEvent
	err := c.f.readStream(ctx, topology.StreamEvents, []string{topology.EventSubject(c.Project, botID)}, func(msg jetstream.Msg) error {
		ev, err := botevents.Decode(msg.Data())
		if err != nil {
			return err
		}
		out = append(out, ev)
		return nil
	})
	return out, err
}

// Bots lists every bot of the client's project through the API (all pages),
// as the raw JSON documents the API answered.
func (c *Client) Bots(ctx context.Context) ([]json.RawMessage, error) {
	var out []json.RawMessage
	path := "/api/v1/bots"
	for path != "" {
		status, body, err := c.Do(ctx, http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("list bots: %d %s", status, body)
		}
		var page struct {
			Next    *string           `json:"next"`
			Results []json.RawMessage `json:"results"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Results...)
		path = ""
		if page.Next != nil && *page.Next != "" {
			path = strings.TrimPrefix(*page.Next, c.f.API)
			if !strings.HasPrefix(path, "/") {
				return nil, fmt.Errorf("list bots: next link %q is not on %s", *page.Next, c.f.API)
			}
		}
	}
	return out, nil
}

// StreamMessage is one stored message of a stream, for scans.
type StreamMessage struct {
	Subject string
	Header  map[string][]string
	Data    []byte
}

// StreamMessages reads every message stored in stream (for example
// topology.StreamEvents: every event and rejection of every project).
func (f *Fleet) StreamMessages(ctx context.Context, stream string) ([]StreamMessage, error) {
	var out []StreamMessage
	err := f.readStream(ctx, stream, nil, func(msg jetstream.Msg) error {
		out = append(out, StreamMessage{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		return nil
	})
	return out, err
}

func (f *Fleet) readStream(ctx context.Context, stream string, subjects []string, each func(jetstream.Msg) error) error {
	cons, err := f.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		return err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return err
	}
	for range info.NumPending {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return err
		}
		if err := each(msg); err != nil {
			return err
		}
	}
	return nil
}

// ScrapeIngest returns ingest's /metrics text.
func (f *Fleet) ScrapeIngest() (string, error) { return get(f.API + "/metrics") }

// Env is the value the fleet gives the USHER_* (or REDIS_URL) variable name
// ("" when unset): what ingest and, unless WorkerEnv overrides it, the
// workers were configured with.
func (f *Fleet) Env(name string) string { return f.env[name] }

// StreamNames lists every JetStream stream of the fleet: the JOBS and EVENTS
// streams, and the streams behind the KV buckets and object stores.
func (f *Fleet) StreamNames(ctx context.Context) ([]string, error) {
	var out []string
	names := f.js.StreamNames(ctx)
	for n := range names.Name() {
		out = append(out, n)
	}
	if err := names.Err(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}
