package teamsaccounts

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type heldKey struct {
	key string
	rev uint64
}

// Claim is a bot's hold on an account: its meeting key and one concurrency
// slot in ACCOUNT_LEASES, renewed by a heartbeat until Release.
type Claim struct {
	// Account is the claimed account.
	Account Account

	leases jetstream.KeyValue
	value  []byte
	log    *slog.Logger
	lostC  prometheus.Counter

	mu   sync.Mutex
	keys []heldKey

	stop     chan struct{}
	done     chan struct{}
	lost     chan struct{}
	lostOnce sync.Once
	release  sync.Once
}

func newClaim(acct Account, leases jetstream.KeyValue, keys []heldKey, value []byte, ttl time.Duration, log *slog.Logger, lost prometheus.Counter) *Claim {
	c := &Claim{
		Account: acct, leases: leases, value: value, log: log, lostC: lost, keys: keys,
		stop: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{}),
	}
	go c.heartbeat(ttl / 3)
	return c
}

// Lost is closed if the claim expired or was taken over while held (the
// worker was partitioned from JetStream longer than the bucket's TTL).
func (c *Claim) Lost() <-chan struct{} { return c.lost }

func (c *Claim) heartbeat(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.renew(every)
		}
	}
}

func (c *Claim) renew(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range c.keys {
		rev, err := c.leases.Update(ctx, k.key, c.value, k.rev)
		switch {
		case err == nil:
			c.keys[i].rev = rev
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
			c.lostOnce.Do(func() {
				c.lostC.Inc()
				c.log.Warn("teams account claim lost", "project", c.Account.Project, "account_id", c.Account.ID, "key", k.key)
				close(c.lost)
			})
		default:
			// JetStream unreachable: try again next beat; the claim survives
			// as long as a beat lands within the TTL.
			c.log.Warn("renew teams account claim", "account_id", c.Account.ID, "err", err)
		}
	}
}

// Release stops the heartbeat and deletes the claim's keys (those still
// ours), so another bot can take the account at once. Idempotent; it uses
// its own short deadline, so it works on paths where the bot's context is done.
func (c *Claim) Release() {
	c.release.Do(func() {
		close(c.stop)
		<-c.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, k := range c.keys {
			err := c.leases.Delete(ctx, k.key, jetstream.LastRevision(k.rev))
			if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				// The key expires with the bucket's TTL anyway.
				c.log.Warn("release teams account claim", "account_id", c.Account.ID, "key", k.key, "err", err)
			}
		}
		c.keys = nil
	})
}
