// Package botcontrol routes commands (a leave) to the worker that holds a
// bot. Each worker takes the commands of all its bots on one subscription,
// usher.control.<worker's token>.>, and names that prefix in every bot lease
// it writes (KV BOT_LEASES, field "control"); a sender reads the bot's
// lease and sends to <prefix>.<project>.<bot_id>.
//
// Why not a subscription per bot (usher.control.<project>.<bot_id>, as
// before): every subscription and unsubscription bumps the server's
// interest generation, which empties every client connection's cache of
// subject matches. A worker starting and ending thousands of bots made the
// whole server match every publish afresh, and cost a SUB and an UNSUB on
// the join path of each bot.
package botcontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/shared/topology"
)

// ErrNotHeld means no worker holds the bot: it has no lease, its lease was
// handed off, or the worker its lease names is gone or no longer serves it.
// It is nats.ErrNoResponders to errors.Is, which is what a request to the
// bot's holder gets when there is none.
var ErrNotHeld = fmt.Errorf("no worker holds the bot: %w", nats.ErrNoResponders)

// NewPrefix returns a new worker's control prefix: usher.control.<nuid>.
func NewPrefix() string { return topology.ControlPrefix + "." + nuid.Next() }

// Subject is where the worker with prefix takes the bot's commands.
func Subject(prefix, project, botID string) string { return prefix + "." + project + "." + botID }

// Target splits a command's subject under prefix into the bot's project and
// id; ok is false for any other subject.
func Target(prefix, subject string) (project, botID string, ok bool) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", "", false
	}
	project, botID, ok = strings.Cut(rest, ".")
	return project, botID, ok && project != "" && botID != "" && !strings.Contains(botID, ".")
}

// route is the part of a lease value (the worker's lease.Value) a sender
// reads.
type route struct {
	Control string `json:"control"`
	HandOff bool   `json:"hand_off"`
}

// holder returns the subject of the bot's holder, read from its lease, or
// ErrNotHeld.
func holder(ctx context.Context, leases jetstream.KeyValue, project, botID string) (string, error) {
	e, err := leases.Get(ctx, botID)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", ErrNotHeld
	}
	if err != nil {
		return "", fmt.Errorf("read lease of bot %s: %w", botID, err)
	}
	var r route
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return "", fmt.Errorf("decode lease of bot %s: %w", botID, err)
	}
	switch {
	case r.HandOff:
		return "", ErrNotHeld // it waits for its next worker
	case r.Control == "":
		// An older worker's lease: it takes commands on a subscription per
		// bot (kept for upgrades; drop once no such worker runs).
		return topology.ControlPrefix + "." + project + "." + botID, nil
	}
	return Subject(r.Control, project, botID), nil
}

// Leave sends a LeaveCommand to the bot's holder and returns its reply. A
// holder that no longer serves the bot answers without a state: that, like
// a lease naming a worker that is gone, is ErrNotHeld.
func Leave(ctx context.Context, nc *nats.Conn, leases jetstream.KeyValue, project, botID, reason string) (*usherv1.ControlReply, error) {
	data, err := proto.Marshal(&usherv1.LeaveCommand{BotId: botID, Reason: reason})
	if err != nil {
		return nil, fmt.Errorf("encode leave command: %w", err)
	}
	subject, err := holder(ctx, leases, project, botID)
	if err != nil {
		return nil, err
	}
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, ErrNotHeld
	}
	if err != nil {
		return nil, err
	}
	var reply usherv1.ControlReply
	if err := proto.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("decode control reply: %w", err)
	}
	if reply.GetState() == "" {
		return nil, ErrNotHeld
	}
	return &reply, nil
}
