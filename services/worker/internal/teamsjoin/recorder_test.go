package teamsjoin

import (
	"context"
	"sync"

	"github.com/usherhq/usher/services/worker/internal/driver"
)

// recorder is the product's Teams driver, recording what it was asked to
// join with (the tests look at the identity it was handed).
type recorder struct {
	driver.Driver
	mu   sync.Mutex
	seen []driver.JoinRequest
}

func (r *recorder) Join(ctx context.Context, req driver.JoinRequest, w driver.Watcher) (driver.Meeting, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req)
	r.mu.Unlock()
	return r.Driver.Join(ctx, req, w)
}

func (r *recorder) requests() []driver.JoinRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]driver.JoinRequest(nil), r.seen...)
}
