// Package sealbox seals secrets at rest with AES-256-GCM under a key ring
// read from the environment (USHER_SECRET_KEYS). A sealed blob names the key
// it was sealed with, so keys can rotate: new blobs use the ring's first
// (current) key, old blobs still open with the key they name, and Reseal
// moves a blob to the current key.
//
// Every blob is bound to a context string (its purpose and owner, such as
// "teams-password/<project>/<account_id>") through GCM's additional data:
// a blob copied to another owner's record does not open.
//
// Blob format (text, safe in JSON, KV values and Redis):
//
//	usb1.<kid>.<base64url(nonce || ciphertext || tag)>
package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/usherhq/usher/shared/secret"
)

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// prefix starts every blob; bump it if the format ever changes.
const prefix = "usb1"

// Errors returned by Open and Reseal. Their messages never carry key
// material or plaintext.
var (
	// ErrMalformed: the value is not a sealbox blob.
	ErrMalformed = errors.New("sealbox: malformed blob")
	// ErrUnknownKey: the blob names a key id the ring does not hold (a key
	// was removed from USHER_SECRET_KEYS before its blobs were resealed).
	ErrUnknownKey = errors.New("sealbox: unknown key id")
	// ErrOpen: authentication failed — the blob was altered, sealed under a
	// different key with the same id, or bound to another context.
	ErrOpen = errors.New("sealbox: blob does not open")
)

var kidRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Config reads the key ring from the environment.
type Config struct {
	// Keys is the key ring: "kid:base64key,kid2:base64key2", each key 32
	// random bytes in base64 (standard or URL alphabet); the first is the
	// current key, the others only open older blobs. Required; generate a key
	// with `head -c 32 /dev/urandom | base64`.
	Keys secret.String `env:"USHER_SECRET_KEYS"`
}

// Validate parses the ring and names the variable when it is wrong.
func (c Config) Validate() error {
	_, err := ParseKeys(c.Keys)
	return err
}

// Ring parses the configured keys.
func (c Config) Ring() (*Ring, error) { return ParseKeys(c.Keys) }

// Ring is a set of AES-256-GCM keys by id; the first is current. It is safe
// for concurrent use and never prints its keys.
type Ring struct {
	current string
	ids     []string
	aeads   map[string]cipher.AEAD
}

// ParseKeys reads "kid:base64key,..." (the USHER_SECRET_KEYS format). Errors
// name the variable and the key id, never the key.
func ParseKeys(spec secret.String) (*Ring, error) {
	r := &Ring{aeads: map[string]cipher.AEAD{}}
	n := 0
	for item := range strings.SplitSeq(spec.Reveal(), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n++
		kid, b64, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("USHER_SECRET_KEYS: entry %d is not kid:base64key", n)
		}
		kid = strings.TrimSpace(kid)
		if !kidRe.MatchString(kid) {
			return nil, fmt.Errorf("USHER_SECRET_KEYS: entry %d: key id must be 1-32 letters, digits, - or _", n)
		}
		if _, dup := r.aeads[kid]; dup {
			return nil, fmt.Errorf("USHER_SECRET_KEYS: key id %q appears twice", kid)
		}
		key, err := decodeKey(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("USHER_SECRET_KEYS: key %q: %w", kid, err)
		}
		aead, err := newAEAD(key)
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("USHER_SECRET_KEYS: key %q: %w", kid, err)
		}
		r.aeads[kid] = aead
		r.ids = append(r.ids, kid)
	}
	if len(r.ids) == 0 {
		return nil, errors.New("USHER_SECRET_KEYS is required: kid:base64key with a 32-byte key (head -c 32 /dev/urandom | base64)")
	}
	r.current = r.ids[0]
	return r, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				clear(key)
				return nil, fmt.Errorf("must decode to %d bytes, got %d", KeySize, len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("is not base64")
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

// NewKeySpec returns a fresh "kid:base64key" entry for USHER_SECRET_KEYS.
func NewKeySpec(kid string) (secret.String, error) {
	if !kidRe.MatchString(kid) {
		return "", fmt.Errorf("key id must be 1-32 letters, digits, - or _, got %q", kid)
	}
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+).
	return secret.String(kid + ":" + base64.StdEncoding.EncodeToString(key)), nil
}

// Current is the id of the key new blobs are sealed with.
func (r *Ring) Current() string { return r.current }

// KeyIDs lists the ring's key ids, current first.
func (r *Ring) KeyIDs() []string { return slices.Clone(r.ids) }

// additionalData binds a blob to its format, its key id and its context, so
// none of them can be swapped without Open failing.
func additionalData(kid, context string) []byte {
	return []byte(prefix + "\x00" + kid + "\x00" + context)
}

// Seal encrypts plaintext under the current key, bound to context.
func (r *Ring) Seal(plaintext []byte, context string) (string, error) {
	return r.sealWith(r.current, plaintext, context)
}

func (r *Ring) sealWith(kid string, plaintext []byte, context string) (string, error) {
	aead := r.aeads[kid]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24+).
	sealed := aead.Seal(nonce, nonce, plaintext, additionalData(kid, context))
	return prefix + "." + kid + "." + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open decrypts a blob sealed for context, with the key the blob names.
func (r *Ring) Open(blob, context string) ([]byte, error) {
	kid, sealed, err := parse(blob)
	if err != nil {
		return nil, err
	}
	aead, ok := r.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrMalformed
	}
	ns := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:ns], sealed[ns:], additionalData(kid, context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Reseal returns blob sealed under the current key (same context), and
// whether it changed. A blob already under the current key is returned as is.
func (r *Ring) Reseal(blob, context string) (string, bool, error) {
	kid, err := KeyID(blob)
	if err != nil {
		return "", false, err
	}
	if kid == r.current {
		// Still open it: a reseal pass is also an integrity check.
		if _, err := r.Open(blob, context); err != nil {
			return "", false, err
		}
		return blob, false, nil
	}
	plain, err := r.Open(blob, context)
	if err != nil {
		return "", false, err
	}
	defer clear(plain)
	out, err := r.Seal(plain, context)
	if err != nil {
		return "", false, err
	}
	return out, true, nil
}

// NeedsReseal reports whether blob was sealed under a key other than the current one.
func (r *Ring) NeedsReseal(blob string) bool {
	kid, err := KeyID(blob)
	return err == nil && kid != r.current
}

// KeyID returns the id of the key a blob was sealed with.
func KeyID(blob string) (string, error) {
	kid, _, err := parse(blob)
	return kid, err
}

func parse(blob string) (kid string, sealed []byte, err error) {
	p, rest, ok := strings.Cut(blob, ".")
	if !ok || p != prefix {
		return "", nil, ErrMalformed
	}
	kid, b64, ok := strings.Cut(rest, ".")
	if !ok || !kidRe.MatchString(kid) {
		return "", nil, ErrMalformed
	}
	sealed, err = base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, ErrMalformed
	}
	return kid, sealed, nil
}

// String describes the ring without its keys.
func (r *Ring) String() string {
	return fmt.Sprintf("sealbox.Ring{current: %s, keys: %s}", r.current, strings.Join(r.ids, ","))
}

// GoString is String, so %#v cannot print the keys either.
func (r *Ring) GoString() string { return r.String() }

// LogValue implements slog.LogValuer: key ids only.
func (r *Ring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", r.current), slog.Any("key_ids", r.ids))
}
