package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/botevents"
	"github.com/usherhq/usher/shared/topology"
)

// Bot is the API's bot object, as a client reads it.
type Bot struct {
	ID               string            `json:"id"`
	State            string            `json:"state"`
	SubCode          *string           `json:"sub_code"`
	MeetingURL       string            `json:"meeting_url"`
	Metadata         map[string]string `json:"metadata"`
	JoinAt           *string           `json:"join_at"`
	DeduplicationKey *string           `json:"deduplication_key"`
	Events           []Event           `json:"events"`
}

// Event is one item of Bot.Events.
type Event struct {
	Type     string            `json:"type"`
	SubType  string            `json:"sub_type"`
	Seq      uint64            `json:"seq"`
	OldState string            `json:"old_state"`
	NewState string            `json:"new_state"`
	SubCode  string            `json:"sub_code"`
	Metadata map[string]string `json:"metadata"`
}

// Sub is the bot's sub_code ("" when unset).
func (b Bot) Sub() string {
	if b.SubCode == nil {
		return ""
	}
	return *b.SubCode
}

// States lists the new_state of each event, in order.
func (b Bot) States() []string {
	out := make([]string, len(b.Events))
	for i, e := range b.Events {
		out[i] = e.NewState
	}
	return out
}

// Do calls the API as Project and returns the status and body.
func (f *Fleet) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.API+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Token "+f.APIKey)
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
func (f *Fleet) CreateBot(ctx context.Context, req map[string]any) (Bot, error) {
	status, body, err := f.Do(ctx, http.MethodPost, "/api/v1/bots", req)
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
func (f *Fleet) GetBot(ctx context.Context, id string) (Bot, error) {
	status, body, err := f.Do(ctx, http.MethodGet, "/api/v1/bots/"+id, nil)
	if err != nil {
		return Bot{}, err
	}
	if status != http.StatusOK {
		return Bot{}, fmt.Errorf("get bot %s: %d %s", id, status, body)
	}
	var b Bot
	return b, json.Unmarshal(body, &b)
}

// ErrTimeout is returned by WaitBot when the condition never held.
var ErrTimeout = errors.New("timed out")

// WaitBot polls the API until cond holds for the bot, and returns it.
func (f *Fleet) WaitBot(ctx context.Context, id string, timeout time.Duration, cond func(Bot) bool) (Bot, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last Bot
	for {
		b, err := f.GetBot(ctx, id)
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
func (f *Fleet) WaitState(ctx context.Context, id, state string, timeout time.Duration) (Bot, error) {
	return f.WaitBot(ctx, id, timeout, func(b Bot) bool { return b.State == state })
}

// Events reads every event of a bot straight from the EVENTS stream, in order.
func (f *Fleet) Events(ctx context.Context, botID string) ([]*usherv1.BotEvent, error) {
	cons, err := f.js.OrderedConsumer(ctx, topology.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{topology.EventSubject(Project, botID)},
	})
	if err != nil {
		return nil, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []*usherv1.BotEvent
	for range info.NumPending {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return out, err
		}
		ev, err := botevents.Decode(msg.Data())
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}
