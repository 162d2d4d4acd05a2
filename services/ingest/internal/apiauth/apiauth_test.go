package apiauth_test

import (
	"strings"
	"testing"

	"github.com/usherhq/usher/services/ingest/internal/apiauth"
)

func TestParseKeys(t *testing.T) {
	t.Parallel()
	keys, err := apiauth.ParseKeys(" acme:aaaaaaaaaaaaaaaa, acme:bbbbbbbbbbbbbbbb ,globex:cccccccccccccccc")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"aaaaaaaaaaaaaaaa": "acme", "bbbbbbbbbbbbbbbb": "acme", "cccccccccccccccc": "globex"} {
		if p, ok := keys.Lookup(key); !ok || p != want {
			t.Errorf("Lookup(%s) = %q, %v", key, p, ok)
		}
	}
	if _, ok := keys.Lookup("dddddddddddddddd"); ok {
		t.Error("unknown key found")
	}
	for _, bad := range []string{"", "acme", "acme:short", "Acme:aaaaaaaaaaaaaaaa", "a:secretsecretsecret1,b:secretsecretsecret1"} {
		_, err := apiauth.ParseKeys(bad)
		if err == nil || !strings.Contains(err.Error(), "USHER_API_KEYS") {
			t.Errorf("ParseKeys(%q) = %v, want an error naming USHER_API_KEYS", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secretsecret") {
			t.Errorf("ParseKeys error shows a key: %v", err)
		}
	}
}
