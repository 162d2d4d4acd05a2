package topology

import (
	"strings"
	"testing"

	"github.com/usherhq/usher/shared/config"
)

func TestDefaultsMatchTheEnvironmentTags(t *testing.T) {
	t.Parallel()
	var c Config
	if err := config.Load(config.MapLookup(nil), &c); err != nil {
		t.Fatal(err)
	}
	if c != Defaults() {
		t.Fatalf("env tag defaults %+v differ from Defaults() %+v", c, Defaults())
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	for env, want := range map[string]string{
		"USHER_NATS_REPLICAS":   "0",
		"USHER_LEASE_TTL":       "10ms",
		"USHER_JOB_MAX_DELIVER": "1",
	} {
		var c Config
		if err := config.Load(config.MapLookup(map[string]string{env: want}), &c); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%s: %v, want an error naming it", env, want, err)
		}
	}
}
