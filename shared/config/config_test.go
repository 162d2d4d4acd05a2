package config

import (
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/secret"
)

type inner struct {
	Name string `env:"T_NAME" default:"inner"`
}

type sample struct {
	Slots   int           `env:"T_SLOTS" default:"4"`
	Wait    time.Duration `env:"T_WAIT" default:"30s"`
	On      bool          `env:"T_ON" default:"true"`
	Ratio   float64       `env:"T_RATIO" default:"0.5"`
	Max     uint32        `env:"T_MAX"`
	Hosts   []string      `env:"T_HOSTS" default:"a, b"`
	Key     secret.String `env:"T_KEY"`
	Nested  inner
	Ignored string
}

func TestLoadAppliesDefaultsAndEnvironment(t *testing.T) {
	t.Parallel()
	var s sample
	if err := Load(MapLookup(nil), &s); err != nil {
		t.Fatal(err)
	}
	if s.Slots != 4 || s.Wait != 30*time.Second || !s.On || s.Ratio != 0.5 || s.Max != 0 ||
		strings.Join(s.Hosts, "|") != "a|b" || s.Nested.Name != "inner" {
		t.Fatalf("defaults: %+v", s)
	}
	err := Load(MapLookup(map[string]string{
		"T_SLOTS": "8", "T_WAIT": "2m", "T_ON": "false", "T_MAX": "7", "T_HOSTS": "x,,y ",
		"T_KEY": "hunter2hunter2", "T_NAME": "outer",
	}), &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Slots != 8 || s.Wait != 2*time.Minute || s.On || s.Max != 7 || strings.Join(s.Hosts, "|") != "x|y" ||
		s.Key.Reveal() != "hunter2hunter2" || s.Nested.Name != "outer" {
		t.Fatalf("from environment: %+v", s)
	}
}

func TestLoadErrorsNameTheVariableAndHideSecrets(t *testing.T) {
	t.Parallel()
	for env, val := range map[string]string{"T_SLOTS": "four", "T_WAIT": "30", "T_ON": "yes please", "T_MAX": "-1"} {
		var s sample
		err := Load(MapLookup(map[string]string{env: val}), &s)
		if err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%q: error %v, want one naming %s", env, val, err, env)
		}
	}
	if err := Load(MapLookup(nil), sample{}); err == nil {
		t.Error("Load into a non-pointer succeeded")
	}
}
