// Package apiauth authenticates API requests by project API key, the way
// Attendee does: "Authorization: Token <key>" (Usher also accepts "Bearer"),
// 401 with WWW-Authenticate: Token and a {"detail"} body on failure. Keys are
// kept only as SHA-256 hashes and compared in constant time.
package apiauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/usherhq/usher/services/ingest/internal/httpjson"
	"github.com/usherhq/usher/shared/topology"
)

// Attendee's 401 messages.
const (
	MsgMissing = "Missing Authorization header"
	MsgFormat  = "Invalid Authorization header. Should have this format: Token <api_key>"
	MsgInvalid = "Invalid or disabled API key"
)

// Keys maps API-key hashes to projects.
type Keys struct {
	byHash map[[32]byte]string
}

// ParseKeys reads "project:key,project2:key2". A project may have several
// keys (rotation); a key belongs to one project.
func ParseKeys(spec string) (*Keys, error) {
	k := &Keys{byHash: map[[32]byte]string{}}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		project, key, ok := strings.Cut(item, ":")
		if !ok || key == "" {
			return nil, fmt.Errorf("USHER_API_KEYS: entry %d is not project:key", len(k.byHash)+1)
		}
		if !topology.ValidProject(project) {
			return nil, fmt.Errorf("USHER_API_KEYS: project %q must be lowercase letters, digits, - or _", project)
		}
		if len(key) < 16 {
			return nil, fmt.Errorf("USHER_API_KEYS: the key of project %s is shorter than 16 characters", project)
		}
		h := sha256.Sum256([]byte(key))
		if other, dup := k.byHash[h]; dup && other != project {
			return nil, fmt.Errorf("USHER_API_KEYS: one key is given to projects %s and %s", other, project)
		}
		k.byHash[h] = project
	}
	if len(k.byHash) == 0 {
		return nil, fmt.Errorf("USHER_API_KEYS: no keys given")
	}
	return k, nil
}

// Lookup returns the project of a raw key.
func (k *Keys) Lookup(key string) (string, bool) {
	h := sha256.Sum256([]byte(key))
	// Map lookup by hash: the hash of an attacker's guess reveals nothing, and
	// the final comparison is constant-time.
	for stored, project := range k.byHash {
		if subtle.ConstantTimeCompare(stored[:], h[:]) == 1 {
			return project, true
		}
	}
	return "", false
}

type ctxKey struct{}

// Project returns the authenticated project of a request's context.
func Project(ctx context.Context) string {
	p, _ := ctx.Value(ctxKey{}).(string)
	return p
}

// WithProject returns ctx carrying project (for tests and internal calls).
func WithProject(ctx context.Context, project string) context.Context {
	return context.WithValue(ctx, ctxKey{}, project)
}

// Middleware authenticates every request and puts its project in the context.
func (k *Keys) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		project, msg := k.authenticate(r.Header.Get("Authorization"))
		if msg != "" {
			w.Header().Set("WWW-Authenticate", "Token")
			httpjson.Detail(w, http.StatusUnauthorized, msg)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithProject(r.Context(), project)))
	})
}

func (k *Keys) authenticate(header string) (project, msg string) {
	if header == "" {
		return "", MsgMissing
	}
	parts := strings.Fields(header)
	if len(parts) != 2 || (!strings.EqualFold(parts[0], "token") && !strings.EqualFold(parts[0], "bearer")) {
		return "", MsgFormat
	}
	project, ok := k.Lookup(parts[1])
	if !ok {
		return "", MsgInvalid
	}
	return project, ""
}
