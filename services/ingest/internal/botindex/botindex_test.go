package botindex_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/botindex"
	"github.com/usherhq/usher/shared/natstest"
)

func TestClaimTakeOverAndRelease(t *testing.T) {
	t.Parallel()
	kv := natstest.New(t).Topology().Bots
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alive := map[string]bool{"bot_a": true}
	live := func(_ context.Context, holder string) (bool, error) { return alive[holder], nil }

	revA, err := botindex.Claim(ctx, kv, "dedup.acme.k", "bot_a", live)
	if err != nil {
		t.Fatal(err)
	}
	var held *botindex.HeldError
	if _, err := botindex.Claim(ctx, kv, "dedup.acme.k", "bot_b", live); !errors.As(err, &held) || held.Holder != "bot_a" {
		t.Fatalf("claim of a held key: %v", err)
	}
	// Once the holder no longer counts, the key is taken over.
	alive["bot_a"] = false
	if _, err := botindex.Claim(ctx, kv, "dedup.acme.k", "bot_b", live); err != nil {
		t.Fatalf("take over: %v", err)
	}
	// The old holder's release leaves the new holder's key alone...
	if err := botindex.ReleaseRevision(ctx, kv, "dedup.acme.k", revA); err != nil {
		t.Fatal(err)
	}
	if err := botindex.Release(ctx, kv, "dedup.acme.k", "bot_a"); err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "dedup.acme.k"); err != nil || string(e.Value()) != "bot_b" {
		t.Fatalf("key after the old holder's release: %v", err)
	}
	// ...and the holder's own release frees it.
	if err := botindex.Release(ctx, kv, "dedup.acme.k", "bot_b"); err != nil {
		t.Fatal(err)
	}
	alive["bot_c"] = true
	if _, err := botindex.Claim(ctx, kv, "dedup.acme.k", "bot_c", live); err != nil {
		t.Fatalf("claim of a released key: %v", err)
	}
}
