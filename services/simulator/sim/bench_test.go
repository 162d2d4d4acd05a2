package sim_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/services/simulator/sim"
)

// BenchmarkPagePoll measures the page poll every bot in a meeting makes
// four times a second; bots/core is the number of bots one core can serve.
func BenchmarkPagePoll(b *testing.B) {
	h := newHarness(b, sim.Config{})
	m, err := h.sim.CreateMeeting(sim.MeetingSpec{Platform: sim.Teams})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.Post(h.url+"/sim/api/meetings/"+m.ID+"/join", "application/json", strings.NewReader(`{"name":"Bot"}`))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := between(string(body), `"token":"`, `"`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(h.url + "/sim/api/participants/" + tok)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/elapsed, "polls/s")
	b.ReportMetric(float64(b.N)/elapsed/4, "bots_polling")
}

// BenchmarkJoin measures a join click (page API), 20 bots per meeting.
func BenchmarkJoin(b *testing.B) {
	h := newHarness(b, sim.Config{})
	var m sim.Meeting
	i := 0
	start := time.Now()
	for b.Loop() {
		if i%20 == 0 {
			var err error
			if m, err = h.sim.CreateMeeting(sim.MeetingSpec{Platform: sim.Meet}); err != nil {
				b.Fatal(err)
			}
		}
		i++
		resp, err := http.Post(h.url+"/sim/api/meetings/"+m.ID+"/join", "application/json", strings.NewReader(`{"name":"Bot"}`))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "joins/s")
}
