package ratelimit_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/usherhq/usher/services/ingest/internal/ratelimit"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ratelimit.Rate{
		"3000/min":  {N: 3000, Period: time.Minute},
		"10/second": {N: 10, Period: time.Second},
		"5/h":       {N: 5, Period: time.Hour},
		"7/day":     {N: 7, Period: 24 * time.Hour},
		"off":       {},
	} {
		got, err := ratelimit.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "3000", "0/min", "-1/s", "x/min", "10/week", "10/"} {
		if _, err := ratelimit.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestLimiterSlidingWindowPerProject(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	l := ratelimit.New(ratelimit.Rate{N: 3, Period: time.Minute}, func() time.Time { return now })
	for i := range 3 {
		if err := l.Allow("acme"); err != nil {
			t.Fatalf("request %d refused: %v", i+1, err)
		}
		now = now.Add(10 * time.Second)
	}
	// t=30s: the window holds t=0,10,20; the oldest leaves at t=60s.
	err := l.Allow("acme")
	var te *ratelimit.ThrottledError
	if !errors.As(err, &te) || te.Seconds() != 30 {
		t.Fatalf("4th request: err = %v, want throttled for 30 s", err)
	}
	if want := "Request was throttled. Expected available in 30 seconds."; te.Error() != want {
		t.Fatalf("message = %q, want %q", te.Error(), want)
	}
	if err := l.Allow("other"); err != nil {
		t.Fatalf("another project is throttled: %v", err)
	}
	now = now.Add(29*time.Second + 500*time.Millisecond)
	err = l.Allow("acme")
	if !errors.As(err, &te) || te.Seconds() != 1 || te.Error() != "Request was throttled. Expected available in 1 second." {
		t.Fatalf("at 59.5 s: err = %v, want throttled for 1 second", err)
	}
	now = now.Add(500 * time.Millisecond)
	if err := l.Allow("acme"); err != nil {
		t.Fatalf("at 60 s the oldest left the window, but: %v", err)
	}
	// A refused request is not recorded: the next slot frees at t=70s.
	now = now.Add(5 * time.Second)
	if err := l.Allow("acme"); !errors.As(err, &te) || te.Seconds() != 5 {
		t.Fatalf("at 65 s: err = %v, want throttled for 5 s", err)
	}
}

func TestUnlimited(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(ratelimit.Rate{}, nil)
	for range 10_000 {
		if err := l.Allow("acme"); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	l := ratelimit.New(ratelimit.Rate{N: 3000, Period: time.Millisecond}, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = l.Allow("acme")
		}
	})
}

func TestIdleProjectsAreForgotten(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	l := ratelimit.New(ratelimit.Rate{N: 5, Period: time.Minute}, func() time.Time { return now })
	for i := range 2000 {
		_ = l.Allow(fmt.Sprintf("p%d", i))
	}
	now = now.Add(time.Minute)
	_ = l.Allow("fresh")
	if n := l.Projects(); n != 1 {
		t.Fatalf("%d projects tracked after a minute of silence, want 1", n)
	}
}
