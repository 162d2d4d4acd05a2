package zoomtoken

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usherhq/usher/shared/logging"
)

// benchClient is a production-shaped client (JSON logs formatted and
// discarded, metrics registered) allowed to reach a loopback endpoint.
func benchClient(b *testing.B, tune func(*Config)) *Client {
	b.Helper()
	cfg := testConfig()
	cfg.AllowHTTP = true
	if tune != nil {
		tune(&cfg)
	}
	log := logging.New(io.Discard, logging.Config{Level: "info", Format: "json"}, "worker")
	c, err := New(cfg, log, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// quantile returns the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*q))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkCallbackOverhead measures Fetch against a bare net/http POST of the
// same body to the same local endpoint, interleaved in one run so both see
// the same machine. The difference is the client's own cost: signing, JSON
// body and strict parsing, breaker, guard, metrics and a log line.
func BenchmarkCallbackOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"zak_token":"eyJ0eXAiOiJKV1QiLCJzdiI6IjAwMDAwMSIsInptX3NrbSI6InptX28ybSIsImFsZyI6IkhTMjU2In0"}`)
	}))
	b.Cleanup(srv.Close)
	c := benchClient(b, nil)
	bareTransport := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(bareTransport.CloseIdleConnections)
	bare := &http.Client{Transport: bareTransport}
	req := request(srv.URL + "/zoom-tokens")
	body, err := encodeBody(req)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	barePost := func() error {
		resp, err := bare.Post(srv.URL+"/zoom-tokens", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	for range 50 { // warm both connection pools
		if err := barePost(); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Fetch(ctx, req); err != nil {
			b.Fatal(err)
		}
	}

	var bareD, clientD []time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var tb, tc time.Duration
		// Alternate which goes first, so neither always runs on a warmer path.
		for k := range 2 {
			start := time.Now()
			if (i+k)%2 == 0 {
				if err := barePost(); err != nil {
					b.Fatal(err)
				}
				tb = time.Since(start)
			} else {
				if _, err := c.Fetch(ctx, req); err != nil {
					b.Fatal(err)
				}
				tc = time.Since(start)
			}
		}
		bareD = append(bareD, tb)
		clientD = append(clientD, tc)
	}
	bp50, bp99 := quantile(bareD, 0.50), quantile(bareD, 0.99)
	cp50, cp99 := quantile(clientD, 0.50), quantile(clientD, 0.99)
	b.ReportMetric(micros(bp50), "bare-p50-µs")
	b.ReportMetric(micros(bp99), "bare-p99-µs")
	b.ReportMetric(micros(cp50), "client-p50-µs")
	b.ReportMetric(micros(cp99), "client-p99-µs")
	b.ReportMetric(micros(cp50-bp50), "overhead-p50-µs")
	b.ReportMetric(micros(cp99-bp99), "overhead-p99-µs")
}

// BenchmarkBreakerOpenDecision measures the time Fetch takes to decide not
// to call a host whose breaker is open.
func BenchmarkBreakerOpenDecision(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	b.Cleanup(srv.Close)
	c := benchClient(b, func(cfg *Config) {
		cfg.Retries = 0
		cfg.BreakerFailures = 1
		cfg.BreakerOpenFor = time.Hour
	})
	req := request(srv.URL + "/zoom-tokens")
	ctx := context.Background()
	if _, err := c.Fetch(ctx, req); !errors.Is(err, ErrUnavailable) {
		b.Fatalf("tripping call: %v", err)
	}

	ds := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		_, err := c.Fetch(ctx, req)
		ds = append(ds, time.Since(start))
		if !errors.Is(err, ErrBreakerOpen) {
			b.Fatalf("err = %v, want ErrBreakerOpen", err)
		}
	}
	b.ReportMetric(micros(quantile(ds, 0.50)), "p50-µs")
	b.ReportMetric(micros(quantile(ds, 0.99)), "p99-µs")
}
