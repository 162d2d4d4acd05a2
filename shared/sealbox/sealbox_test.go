package sealbox_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
)

func newSpec(t *testing.T, kid string) secret.String {
	t.Helper()
	s, err := sealbox.NewKeySpec(kid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ring(t *testing.T, specs ...secret.String) *sealbox.Ring {
	t.Helper()
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = s.Reveal()
	}
	r, err := sealbox.ParseKeys(secret.String(strings.Join(parts, ",")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	r := ring(t, newSpec(t, "k1"))
	plain := []byte("correct horse battery staple")
	blob, err := r.Seal(plain, "teams-password/acme/acct_1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(blob, string(plain)) || !strings.HasPrefix(blob, "usb1.k1.") {
		t.Fatalf("blob %q leaks plaintext or has the wrong shape", blob)
	}
	got, err := r.Open(blob, "teams-password/acme/acct_1")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := r.Seal(plain, "teams-password/acme/acct_1")
	if again == blob {
		t.Fatal("two seals of the same plaintext are identical: nonce reused")
	}
}

func TestOpenRefusesOtherContextTamperingAndUnknownKeys(t *testing.T) {
	t.Parallel()
	r := ring(t, newSpec(t, "k1"))
	blob, _ := r.Seal([]byte("pw"), "teams-password/acme/acct_1")

	if _, err := r.Open(blob, "teams-password/other/acct_1"); !errors.Is(err, sealbox.ErrOpen) {
		t.Errorf("other owner: err = %v, want ErrOpen", err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.SplitN(blob, ".", 3)[2])
	raw[len(raw)-1] ^= 1
	tampered := "usb1.k1." + base64.RawURLEncoding.EncodeToString(raw)
	if _, err := r.Open(tampered, "teams-password/acme/acct_1"); !errors.Is(err, sealbox.ErrOpen) {
		t.Errorf("tampered: err = %v, want ErrOpen", err)
	}
	// Renaming the key id is caught too: the id is in the additional data.
	r2 := ring(t, newSpec(t, "k2"), newSpec(t, "k1"))
	renamed := strings.Replace(blob, "usb1.k1.", "usb1.k2.", 1)
	if _, err := r2.Open(renamed, "teams-password/acme/acct_1"); !errors.Is(err, sealbox.ErrOpen) {
		t.Errorf("renamed kid: err = %v, want ErrOpen", err)
	}
	other := ring(t, newSpec(t, "k9"))
	if _, err := other.Open(blob, "teams-password/acme/acct_1"); !errors.Is(err, sealbox.ErrUnknownKey) {
		t.Errorf("unknown kid: err = %v, want ErrUnknownKey", err)
	}
	for _, bad := range []string{"", "plain", "usb1.k1", "usb1.k1.!!!", "usb2.k1.AAAA", "usb1.k1.AAAA"} {
		if _, err := r.Open(bad, "x"); !errors.Is(err, sealbox.ErrMalformed) {
			t.Errorf("Open(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestRotationAndReseal(t *testing.T) {
	t.Parallel()
	old := newSpec(t, "2024")
	oldRing := ring(t, old)
	blob, _ := oldRing.Seal([]byte("pw"), "ctx")

	current := newSpec(t, "2025")
	rotated := ring(t, current, old)
	if rotated.Current() != "2025" {
		t.Fatalf("Current = %s", rotated.Current())
	}
	if got, err := rotated.Open(blob, "ctx"); err != nil || string(got) != "pw" {
		t.Fatalf("old blob under rotated ring: %q, %v", got, err)
	}
	if !rotated.NeedsReseal(blob) {
		t.Fatal("NeedsReseal = false for a blob under the old key")
	}
	fresh, changed, err := rotated.Reseal(blob, "ctx")
	if err != nil || !changed {
		t.Fatalf("Reseal = %v, %v", changed, err)
	}
	if kid, _ := sealbox.KeyID(fresh); kid != "2025" {
		t.Fatalf("resealed kid = %s", kid)
	}
	same, changed, err := rotated.Reseal(fresh, "ctx")
	if err != nil || changed || same != fresh {
		t.Fatalf("second Reseal changed=%v err=%v", changed, err)
	}
	// Once the old key is dropped, only the resealed blob opens.
	newOnly := ring(t, current)
	if _, err := newOnly.Open(blob, "ctx"); !errors.Is(err, sealbox.ErrUnknownKey) {
		t.Fatalf("old blob after dropping its key: err = %v, want ErrUnknownKey", err)
	}
	if got, err := newOnly.Open(fresh, "ctx"); err != nil || string(got) != "pw" {
		t.Fatalf("resealed blob after dropping the old key: %q, %v", got, err)
	}
}

func TestParseKeysErrorsNameVariableNeverKey(t *testing.T) {
	t.Parallel()
	good := newSpec(t, "k1")
	short := "k2:" + base64.StdEncoding.EncodeToString([]byte("too short key material"))
	cases := map[string]string{
		"":                                  "USHER_SECRET_KEYS is required",
		"nocolon":                           "entry 1 is not kid:base64key",
		"bad kid!:AAAA":                     "key id must be",
		short:                               `key "k2": must decode to 32 bytes, got 22`,
		"k3:%%%notbase64%%%":                `key "k3": is not base64`,
		good.Reveal() + "," + good.Reveal(): `key id "k1" appears twice`,
	}
	for spec, want := range cases {
		_, err := sealbox.ParseKeys(secret.String(spec))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "USHER_SECRET_KEYS") {
			t.Errorf("ParseKeys(%q) = %v, want it to contain %q", spec, err, want)
			continue
		}
		if _, key, ok := strings.Cut(spec, ":"); ok && len(key) > 4 && strings.Contains(err.Error(), key) {
			t.Errorf("error %q reveals key material", err)
		}
	}
	// URL-safe and unpadded base64 are accepted.
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = 0xfb
	}
	if _, err := sealbox.ParseKeys(secret.String("u:" + base64.RawURLEncoding.EncodeToString(raw))); err != nil {
		t.Errorf("url-safe key: %v", err)
	}
}

func TestRingNeverPrintsKeys(t *testing.T) {
	t.Parallel()
	spec := newSpec(t, "k1")
	_, key, _ := strings.Cut(spec.Reveal(), ":")
	r := ring(t, spec)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("ring", "ring", r)
	out := fmt.Sprintf("%v %+v %#v %s", r, r, r, r) + buf.String() + fmt.Sprint(sealbox.Config{Keys: spec})
	if strings.Contains(out, key) {
		t.Fatalf("key material printed: %s", out)
	}
	if !strings.Contains(out, "k1") {
		t.Fatalf("key id missing from description: %s", out)
	}
}
