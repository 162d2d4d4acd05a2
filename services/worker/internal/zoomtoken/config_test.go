package zoomtoken

import (
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/config"
	"github.com/usherhq/usher/shared/secret"
)

func TestConfigDefaultsAreProductionSafe(t *testing.T) {
	t.Parallel()
	var cfg Config
	if err := config.Load(config.MapLookup(nil), &cfg); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.Timeout != 10*time.Second || cfg.Retries != 2 || cfg.AllowHTTP || len(cfg.AllowCIDRs) != 0 {
		t.Errorf("defaults = %+v: want 10s timeout, 2 retries, https only, no allow-listed range", cfg)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Parallel()
	var cfg Config
	err := config.Load(config.MapLookup(map[string]string{
		"USHER_CALLBACK_ALLOW_HTTP":  "true",
		"USHER_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8,::1/128",
		"USHER_CALLBACK_SECRETS":     "dev:dev-secret-0123456789abc",
	}), &cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	secrets, _ := parseSecrets(cfg.Secrets)
	if !cfg.AllowHTTP || len(cfg.AllowCIDRs) != 2 || len(secrets["dev"]) != 1 {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	const leaked = "topsecret-value-0123456789"
	cases := []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"timeout", func(c *Config) { c.Timeout = 0 }, "USHER_CALLBACK_TIMEOUT"},
		{"retries", func(c *Config) { c.Retries = 6 }, "USHER_CALLBACK_RETRIES"},
		{"retry delay", func(c *Config) { c.RetryDelay = 0 }, "USHER_CALLBACK_RETRY_DELAY"},
		{"breaker failures", func(c *Config) { c.BreakerFailures = 0 }, "USHER_CALLBACK_BREAKER_FAILURES"},
		{"breaker open for", func(c *Config) { c.BreakerOpenFor = 0 }, "USHER_CALLBACK_BREAKER_OPEN_FOR"},
		{"breaker hosts", func(c *Config) { c.BreakerHosts = 0 }, "USHER_CALLBACK_BREAKER_HOSTS"},
		{"cidr", func(c *Config) { c.AllowCIDRs = []string{"127.0.0.1"} }, "USHER_CALLBACK_ALLOW_CIDRS"},
		{"secret without project", func(c *Config) { c.Secrets = leaked }, "USHER_CALLBACK_SECRETS: entry 1 is not project:secret"},
		{"short secret", func(c *Config) { c.Secrets = "acme:tiny-pw" }, "USHER_CALLBACK_SECRETS: the secret of project acme is shorter"},
		{"bad project", func(c *Config) { c.Secrets = secret.String("Bad Project:" + leaked) }, "USHER_CALLBACK_SECRETS: entry 1: project"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			tc.set(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want it to contain %q", err, tc.want)
			}
			assertNoSecret(t, "validation error", err.Error(), leaked, "tiny-pw")
			if _, nerr := New(cfg, discard(), nil); nerr == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}
