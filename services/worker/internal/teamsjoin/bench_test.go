package teamsjoin

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/usherhq/usher/services/simulator/sim"
)

// percentile returns the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkTimeToJoined measures, in the same run and against the simulator
// with real Chromium and Redis, the time to joined of an anonymous bot, a
// signed-in bot with a warm (cached) session, and a signed-in bot that must
// log in (cold). Each iteration does one of each. Reported: p50/p99 of each
// in ms and warm/anonymous p50 (target ≤ 1.2).
//
//	go test -run '^$' -bench TimeToJoined -benchtime 20x ./internal/teamsjoin/
func BenchmarkTimeToJoined(b *testing.B) {
	f := newFixture(b)
	id := f.account("acme", "bench@contoso.com", "pw-bench-1", sim.BehaviorOK)
	w := f.worker(f.redisURL)
	opts, _ := redis.ParseURL(f.redisURL)
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { _ = rdb.Close() })
	sessionKey := f.prefix + "teams:session:acme:" + id

	timeJoin := func(authRequired, useLogin bool) time.Duration {
		job := teamsJob(f.meeting(authRequired).URL, useLogin, "")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		m, err := w.joiner.Join(ctx, job, nil)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Close()
		return d
	}
	// Warm the browser and the cache once, outside the measurement.
	timeJoin(false, false)
	timeJoin(true, true)

	var anon, warm, cold []time.Duration
	b.ResetTimer()
	for range b.N {
		anon = append(anon, timeJoin(false, false))
		warm = append(warm, timeJoin(true, true))
		if err := rdb.Del(context.Background(), sessionKey).Err(); err != nil {
			b.Fatal(err)
		}
		cold = append(cold, timeJoin(true, true))
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(anon, 50)), "anon_p50_ms")
	b.ReportMetric(ms(percentile(anon, 99)), "anon_p99_ms")
	b.ReportMetric(ms(percentile(warm, 50)), "warm_p50_ms")
	b.ReportMetric(ms(percentile(warm, 99)), "warm_p99_ms")
	b.ReportMetric(ms(percentile(cold, 50)), "cold_p50_ms")
	b.ReportMetric(ms(percentile(cold, 99)), "cold_p99_ms")
	b.ReportMetric(ms(percentile(warm, 50))/ms(percentile(anon, 50)), "warm/anon_p50")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLoginsPer100Bots sends 100 signed-in bots for one account (8 at a
// time, across 4 workers, each bot to its own org-only meeting) from a cold
// cache, and reports how many Microsoft logins the simulator saw (target 1).
func BenchmarkLoginsPer100Bots(b *testing.B) {
	f := newFixture(b)
	f.maxBots = 100
	id := f.account("acme", "hundred@contoso.com", "pw-hundred-1", sim.BehaviorOK)
	workers := []*worker{f.worker(f.redisURL), f.worker(f.redisURL), f.worker(f.redisURL), f.worker(f.redisURL)}
	opts, _ := redis.ParseURL(f.redisURL)
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { _ = rdb.Close() })

	var logins, bots int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		_ = rdb.Del(context.Background(), f.prefix+"teams:session:acme:"+id).Err()
		meetings := make([]string, 100)
		for i := range meetings {
			meetings[i] = f.meeting(true).URL
		}
		before := f.sim.Stats().MicrosoftLogins
		b.StartTimer()
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for i, u := range meetings {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				m, err := workers[i%len(workers)].joiner.Join(ctx, teamsJob(u, true, ""), nil)
				if err != nil {
					b.Error(err)
					return
				}
				_ = m.Close()
			})
		}
		wg.Wait()
		b.StopTimer()
		logins += f.sim.Stats().MicrosoftLogins - before
		bots += len(meetings)
	}
	b.ReportMetric(float64(logins)*100/float64(bots), "logins/100bots")
}
