package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/metrics"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Parallel()
	var cfg Config
	if err := config.Load(config.MapLookup(nil), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if got := cfg.WithDefaults().Sim.PublicURL; got != "http://127.0.0.1:8090" {
		t.Fatalf("default public URL %q, want http://127.0.0.1:8090", got)
	}
	if cfg.Sim.ZAKTTL != 5*time.Minute || cfg.Sim.SessionTTL != 24*time.Hour {
		t.Fatalf("defaults %+v", cfg.Sim)
	}
	everywhere := Config{Addr: "0.0.0.0:8090"}
	if got := everywhere.WithDefaults().Sim.PublicURL; got != "" {
		t.Fatalf("public URL %q for 0.0.0.0, want empty (each request's Host)", got)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"USHER_SIMULATOR_ADDR": "nope"}, "USHER_SIMULATOR_ADDR"},
		{map[string]string{"USHER_SIMULATOR_PUBLIC_URL": "ftp://x"}, "USHER_SIMULATOR_PUBLIC_URL"},
		{map[string]string{"USHER_SIMULATOR_ZAK_TTL": "-1s"}, "USHER_SIMULATOR_ZAK_TTL"},
		{map[string]string{"USHER_LOG_LEVEL": "loud"}, "USHER_LOG_LEVEL"},
	} {
		var cfg Config
		if err := config.Load(config.MapLookup(c.env), &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: Validate() = %v, want an error naming %s", c.env, err, c.want)
		}
	}
}

func TestHandlerServesSimulatorMetricsAndHealth(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	a := New(Config{Addr: "127.0.0.1:0", ShutdownGrace: time.Second}, logging.Discard(), reg)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	if err := a.Simulator().SetPublicURL(srv.URL); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Post(srv.URL+"/admin/meetings", "application/json", strings.NewReader(`{"platform":"meet","waiting_room":true}`))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ ID, URL string }
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(m.URL, srv.URL+"/meet/") {
		t.Fatalf("create: %d %+v", resp.StatusCode, m)
	}
	resp, err = http.Post(srv.URL+"/sim/api/meetings/"+m.ID+"/join", "application/json", strings.NewReader(`{"name":"Bot"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"ready"`,
		"/metrics": `usher_simulator_meeting_joins_total{outcome="waiting",platform="meet"} 1`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, want %q in %.300s", path, resp.StatusCode, want, b)
		}
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `usher_simulator_http_requests_total{code="201",route="POST /admin/meetings"} 1`) {
		t.Errorf("http metrics by route missing: %.2000s", b)
	}
	if strings.Contains(string(b), m.ID) {
		t.Error("a meeting id leaked into a metric label")
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a := New(Config{Addr: addr, ShutdownGrace: time.Second}, logging.Discard(), metrics.NewRegistry())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/admin/stats")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulator never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
