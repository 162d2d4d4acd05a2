package jobs

import "context"

// slots is the worker's bot capacity: a token per slot. The fetch loop
// reserves free slots before it pulls, so a job is only ever fetched when it
// can start at once.
type slots struct {
	tokens chan struct{}
}

func newSlots(n int) *slots {
	s := &slots{tokens: make(chan struct{}, n)}
	for range n {
		s.tokens <- struct{}{}
	}
	return s
}

// reserve blocks until at least one slot is free (or ctx is done, returning
// 0) and then takes every free slot up to max.
func (s *slots) reserve(ctx context.Context, max int) int {
	select {
	case <-s.tokens:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < max {
		select {
		case <-s.tokens:
			n++
		default:
			return n
		}
	}
	return n
}

// release gives n slots back.
func (s *slots) release(n int) {
	for range n {
		s.tokens <- struct{}{}
	}
}
