// The tests share the process-wide id state, so they do not run in parallel.
package ids

import (
	"testing"
	"time"
)

func TestBotIDsHaveAttendeesShapeAndSortByCreation(t *testing.T) {
	// Far ahead of the real clock: the process-wide monotonic state never clamps it.
	now := time.Date(2100, 11, 25, 17, 30, 0, 0, time.UTC)
	prev := ""
	for i := range 5000 {
		// Many ids in the same millisecond, then the clock moves on.
		id := NewBotID(now.Add(time.Duration(i/1000) * time.Millisecond))
		if !ValidBotID(id) {
			t.Fatalf("id %q does not match ^bot_[0-9A-Za-z]{16}$", id)
		}
		if id <= prev {
			t.Fatalf("id %q made after %q sorts before it", id, prev)
		}
		prev = id
	}
	if got := BotIDTime(NewBotID(now.Add(time.Hour))); !got.Equal(now.Add(time.Hour)) {
		t.Fatalf("BotIDTime = %v, want %v", got, now.Add(time.Hour))
	}
}

func TestBotIDsStayMonotonicWhenTheClockGoesBack(t *testing.T) {
	now := time.Now()
	a := NewBotID(now.Add(10 * time.Second))
	b := NewBotID(now)
	if b <= a {
		t.Fatalf("id after a clock step back %q sorts before %q", b, a)
	}
}
