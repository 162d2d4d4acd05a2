package fleet

import (
	"context"
	"errors"
	"time"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
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
	return f.As(Project).Do(ctx, method, path, body)
}

// CreateBot posts a bot request; it returns the bot on 201, else an error with the body.
func (f *Fleet) CreateBot(ctx context.Context, req map[string]any) (Bot, error) {
	return f.As(Project).CreateBot(ctx, req)
}

// GetBot reads a bot through the API.
func (f *Fleet) GetBot(ctx context.Context, id string) (Bot, error) {
	return f.As(Project).GetBot(ctx, id)
}

// ErrTimeout is returned by WaitBot when the condition never held.
var ErrTimeout = errors.New("timed out")

// WaitBot polls the API until cond holds for the bot, and returns it.
func (f *Fleet) WaitBot(ctx context.Context, id string, timeout time.Duration, cond func(Bot) bool) (Bot, error) {
	return f.As(Project).WaitBot(ctx, id, timeout, cond)
}

// WaitState waits until the bot is in state.
func (f *Fleet) WaitState(ctx context.Context, id, state string, timeout time.Duration) (Bot, error) {
	return f.As(Project).WaitState(ctx, id, state, timeout)
}

// Events reads every event of a bot straight from the EVENTS stream, in order.
func (f *Fleet) Events(ctx context.Context, botID string) ([]*usherv1.BotEvent, error) {
	return f.As(Project).Events(ctx, botID)
}
