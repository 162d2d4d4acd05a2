package drivers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
	"github.com/usherhq/usher/services/simulator/sim"
	"github.com/usherhq/usher/services/worker/internal/browser"
	"github.com/usherhq/usher/services/worker/internal/browser/browsertest"
	"github.com/usherhq/usher/services/worker/internal/driver"
	"github.com/usherhq/usher/services/worker/internal/drivers/drivertest"
	"github.com/usherhq/usher/shared/logging"
)

// densityBots is how many bots each mode holds in meetings at once.
const densityBots = 20

// densityResult is one mode's figures.
type densityResult struct {
	mode     string
	memBytes int64
	joins    []time.Duration
}

func (r densityResult) botsPerGiB() float64 {
	return float64(densityBots) / (float64(r.memBytes) / (1 << 30))
}

func (r densityResult) mibPerBot() float64 {
	return float64(r.memBytes) / (1 << 20) / densityBots
}

func (r densityResult) percentile(p float64) time.Duration {
	s := slices.Clone(r.joins)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// BenchmarkDensity compares Usher's model — one browser, an incognito
// context per bot — with the browser-per-bot model of other meeting bots:
// 20 bots in simulator meetings (Zoom, Teams and Meet in turn), joined one
// after the other; memory is the PSS of every browser process once all are
// in. Run with -benchtime=1x; each iteration runs both modes.
func BenchmarkDensity(b *testing.B) {
	var shared, perBot densityResult
	for b.Loop() {
		shared = runDensity(b, "shared browser", false)
		perBot = runDensity(b, "browser per bot", true)
	}
	b.ReportMetric(shared.botsPerGiB(), "shared_bots/GiB")
	b.ReportMetric(perBot.botsPerGiB(), "per_bot_bots/GiB")
	b.ReportMetric(shared.botsPerGiB()/perBot.botsPerGiB(), "density_x")
	b.ReportMetric(shared.mibPerBot(), "shared_MiB/bot")
	b.ReportMetric(perBot.mibPerBot(), "per_bot_MiB/bot")
	b.ReportMetric(shared.percentile(0.5).Seconds(), "shared_join_p50_s")
	b.ReportMetric(shared.percentile(0.99).Seconds(), "shared_join_p99_s")
	b.ReportMetric(perBot.percentile(0.5).Seconds(), "per_bot_join_p50_s")
	b.ReportMetric(perBot.percentile(0.99).Seconds(), "per_bot_join_p99_s")
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-16s %6s %10s %10s %9s %9s\n", "mode", "bots", "MiB/bot", "bots/GiB", "join p50", "join p99")
	for _, r := range []densityResult{shared, perBot} {
		fmt.Fprintf(&t, "%-16s %6d %10.1f %10.1f %8.2fs %8.2fs\n", r.mode, densityBots, r.mibPerBot(), r.botsPerGiB(),
			r.percentile(0.5).Seconds(), r.percentile(0.99).Seconds())
	}
	fmt.Fprintf(&t, "shared holds %.2fx the bots per GiB of browser-per-bot (target ≥ 3x)\n", shared.botsPerGiB()/perBot.botsPerGiB())
	b.Log(t.String())
}

func runDensity(b *testing.B, mode string, browserPerBot bool) densityResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := browsertest.Config(densityBots)
	var engines []*browser.Engine
	defer func() {
		for _, e := range engines {
			_ = e.Close()
		}
	}()
	start := func(maxContexts int) *browser.Engine {
		cfg.MaxContexts = maxContexts
		e := browser.New(cfg, logging.Discard(), nil)
		if err := e.Start(ctx); err != nil {
			b.Fatalf("start chromium: %v", err)
		}
		engines = append(engines, e)
		return e
	}
	var byPlatform map[usherv1.Platform]driver.Driver
	if !browserPerBot {
		byPlatform = New(start(densityBots), Config{}, logging.Discard(), nil)
	}
	platforms := []struct {
		platform usherv1.Platform
		sim      string
	}{{usherv1.Platform_PLATFORM_ZOOM, sim.Zoom}, {usherv1.Platform_PLATFORM_TEAMS, sim.Teams}, {usherv1.Platform_PLATFORM_MEET, sim.Meet}}

	res := densityResult{mode: mode}
	var meetings []driver.Meeting
	defer func() {
		for _, m := range meetings {
			_ = m.Close()
		}
	}()
	for i := range densityBots {
		pl := platforms[i%len(platforms)]
		m, err := env.Sim.CreateMeeting(sim.MeetingSpec{Platform: pl.sim})
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("Density Bot %d", i)
		req := driver.JoinRequest{BotID: fmt.Sprintf("bot_density%02d", i), Project: "bench", BotName: name,
			Platform: pl.platform, MeetingURL: m.URL, Simulated: true, AloneTimeout: time.Hour}
		began := time.Now()
		if browserPerBot {
			// The peers' model: a browser is started for the bot, then it joins.
			byPlatform = New(start(1), Config{}, logging.Discard(), nil)
		}
		in, err := byPlatform[pl.platform].Join(ctx, req, drivertest.NewWatcher())
		if err != nil {
			b.Fatalf("%s: join bot %d: %v", mode, i, err)
		}
		res.joins = append(res.joins, time.Since(began))
		meetings = append(meetings, in)
		if _, err := env.Sim.WaitParticipant(ctx, m.ID, name, sim.StateInMeeting); err != nil {
			b.Fatal(err)
		}
	}
	// Every bot is in its meeting and its page polls; average a few samples.
	var sum int64
	const samples = 5
	for range samples {
		time.Sleep(200 * time.Millisecond)
		var total int64
		for _, e := range engines {
			n, err := e.MemoryBytes()
			if err != nil {
				b.Fatal(err)
			}
			total += n
		}
		sum += total
	}
	res.memBytes = sum / samples
	return res
}
