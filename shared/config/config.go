// Package config fills a component's Config struct from environment
// variables named in struct tags, so main is the only place that reads the
// environment and every default is written next to its field:
//
//	type Config struct {
//		// Slots is how many bots one worker runs at once. Default 4.
//		Slots int `env:"USHER_WORKER_SLOTS" default:"4"`
//	}
//
// Supported field types: string, bool, int, int64, uint32, float64,
// time.Duration, []string (comma-separated), secret.String, and nested
// structs (walked without a prefix). A field without an env tag is left alone.
package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/usherhq/usher/shared/secret"
)

// Lookup returns an environment variable and whether it is set; os.LookupEnv fits.
type Lookup func(name string) (string, bool)

// MapLookup makes a Lookup from a map, for tests.
func MapLookup(m map[string]string) Lookup {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

// Load sets each tagged field of the struct dst points to from lookup, or from
// its default tag when the variable is unset or empty. The error names the variable.
func Load(lookup Lookup, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, got %T", dst)
	}
	return load(lookup, v.Elem())
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[secret.String]()
)

func load(lookup Lookup, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if !f.IsExported() {
			continue
		}
		name, ok := f.Tag.Lookup("env")
		if !ok {
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				if err := load(lookup, fv); err != nil {
					return err
				}
			}
			continue
		}
		raw, set := lookup(name)
		if !set || raw == "" {
			raw, set = f.Tag.Lookup("default")
			if !set {
				continue
			}
		}
		if err := setField(fv, raw); err != nil {
			if f.Type == secretType {
				return fmt.Errorf("%s: %w", name, err)
			}
			return fmt.Errorf("%s: %w (got %q)", name, err, raw)
		}
	}
	return nil
}

func setField(fv reflect.Value, raw string) error {
	switch {
	case fv.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("not a duration like 30s or 5m")
		}
		fv.SetInt(int64(d))
		return nil
	case fv.Type() == secretType:
		fv.Set(reflect.ValueOf(secret.String(raw)))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("not a boolean (true or false)")
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		fv.SetInt(n)
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		n, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("not a non-negative integer")
		}
		fv.SetUint(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		fv.SetFloat(n)
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported slice type %s", fv.Type())
		}
		var parts []string
		for p := range strings.SplitSeq(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		fv.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported field type %s", fv.Type())
	}
	return nil
}
