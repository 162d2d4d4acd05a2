// Package botindex keeps the BOTS bucket's secondary keys that point at a
// bot: dedup.<project>.<hash> (a deduplication key, held while the bot is
// unfinished) and msgid.<project>.<hash> (the Nats-Msg-Id of the NATS request
// that created the bot). A key is claimed with a KV Create, taken over with a
// compare-and-set Update once its holder no longer counts, and released only
// by its holder, so two creates can never both own one key.
package botindex

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// HeldError is returned by Claim when a live bot holds the key.
type HeldError struct {
	Key    string
	Holder string
}

// Error describes the refusal.
func (e *HeldError) Error() string { return fmt.Sprintf("index %s is held by bot %s", e.Key, e.Holder) }

// ErrContended is returned when the key changed under Claim every time it tried.
var ErrContended = errors.New("index key keeps changing")

// Live reports whether the bot holding a key still counts: while it does,
// nobody else may claim the key.
type Live func(ctx context.Context, holder string) (bool, error)

// Claim points key at botID and returns the revision written. When the key is
// held by a bot live says still counts it returns a *HeldError; when the
// holder no longer counts the key is taken over.
func Claim(ctx context.Context, kv jetstream.KeyValue, key, botID string, live Live) (uint64, error) {
	for range 4 {
		rev, err := kv.Create(ctx, key, []byte(botID))
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("claim %s: %w", key, err)
		}
		entry, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released in between
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", key, err)
		}
		holder := string(entry.Value())
		alive, err := live(ctx, holder)
		if err != nil {
			return 0, fmt.Errorf("check holder of %s: %w", key, err)
		}
		if alive {
			return 0, &HeldError{Key: key, Holder: holder}
		}
		rev, err = kv.Update(ctx, key, []byte(botID), entry.Revision())
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("take over %s: %w", key, err)
		}
	}
	return 0, fmt.Errorf("claim %s: %w", key, ErrContended)
}

// Release deletes key if botID still holds it. A key that is gone or held by
// another bot is left alone.
func Release(ctx context.Context, kv jetstream.KeyValue, key, botID string) error {
	entry, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if string(entry.Value()) != botID {
		return nil
	}
	return ReleaseRevision(ctx, kv, key, entry.Revision())
}

// ReleaseRevision deletes key if it is still at revision rev (a claim's own
// revision).
func ReleaseRevision(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64) error {
	err := kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}
