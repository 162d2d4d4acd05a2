package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/services/ingest/app"
	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/topology"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	var cfg app.Config
	if err := config.Load(config.MapLookup(map[string]string{"USHER_API_KEYS": "acme:" + acmeKey}), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.NATSURL != "nats://127.0.0.1:4333" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.RateLimit != "3000/min" ||
		cfg.MaxBodyBytes != 64<<10 || cfg.JoinDeadline != 10*time.Minute || cfg.CallbackAllowHTTP || cfg.SimulatorURL != "" {
		t.Fatalf("defaults = %+v", cfg)
	}
	if cfg.Topology != topology.Defaults() {
		t.Fatalf("topology defaults %+v differ from topology.Defaults() %+v", cfg.Topology, topology.Defaults())
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	for name, val := range map[string]string{
		"USHER_NATS_URL":        "::",
		"USHER_HTTP_ADDR":       "8080",
		"USHER_API_KEYS":        "acme",
		"USHER_PUBLIC_URL":      "ftp://x",
		"USHER_SIMULATOR_URL":   "nope",
		"USHER_RATE_LIMIT":      "lots",
		"USHER_MAX_BODY_BYTES":  "10",
		"USHER_JOIN_DEADLINE":   "1s",
		"USHER_REQUEST_TIMEOUT": "1ms",
		"USHER_NATS_REPLICAS":   "7",
		"USHER_JOB_MAX_DELIVER": "1",
		"USHER_LOG_LEVEL":       "loud",
	} {
		var cfg app.Config
		vars := map[string]string{"USHER_API_KEYS": "acme:" + acmeKey, name: val}
		if err := config.Load(config.MapLookup(vars), &cfg); err != nil {
			t.Fatal(err)
		}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: err = %v, want it to name %s", name, val, err, name)
		}
		if err != nil && strings.Contains(err.Error(), acmeKey) {
			t.Errorf("%s: the error shows an API key: %v", name, err)
		}
	}
	var cfg app.Config
	_ = config.Load(config.MapLookup(map[string]string{}), &cfg)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "USHER_API_KEYS") {
		t.Errorf("no keys: %v", err)
	}
}
