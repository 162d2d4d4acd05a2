// Package callbacksig is Usher's callback signature, both sides of it: Sign
// is what the worker puts on every call to a customer's endpoint (the
// zoom_tokens_url), VerifyUsherCallback is what the customer runs — the Go
// example of docs/zoom-tokens.md, kept identical by a test, and usable as is
// by Go customers.
//
//	X-Usher-Timestamp: <unix seconds>
//	X-Usher-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + raw body)) [, v1=... during a rotation]
package callbacksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usherhq/usher/shared/secret"
)

// Request headers that let the customer verify a callback and refuse replays.
const (
	// HeaderTimestamp is the signing time in unix seconds.
	HeaderTimestamp = "X-Usher-Timestamp"
	// HeaderSignature is "v1=<hex>", one per project secret, comma-separated.
	HeaderSignature = "X-Usher-Signature"
	// MaxAge is how old a signed call may be before a receiver refuses it.
	MaxAge = 5 * time.Minute
)

// scheme prefixes each signature, so the scheme can change later without
// breaking receivers that check it.
const scheme = "v1="

// Sign returns the X-Usher-Signature value of body sent at unix time ts:
// "v1=" + hex(HMAC-SHA256(secret, ts + "." + body)) for each secret, joined
// by commas (several secrets while one is being rotated).
func Sign(secrets []secret.String, ts int64, body []byte) string {
	prefix := strconv.AppendInt(nil, ts, 10)
	prefix = append(prefix, '.')
	var b strings.Builder
	for i, s := range secrets {
		if i > 0 {
			b.WriteByte(',')
		}
		mac := hmac.New(sha256.New, []byte(s.Reveal()))
		mac.Write(prefix)
		mac.Write(body)
		b.WriteString(scheme)
		b.WriteString(hex.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

// VerifyUsherCallback checks X-Usher-Signature and X-Usher-Timestamp.
func VerifyUsherCallback(secret string, h http.Header, body []byte, now time.Time) error {
	ts := h.Get("X-Usher-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("missing or malformed X-Usher-Timestamp")
	}
	if age := now.Sub(time.Unix(sec, 0)); age > 5*time.Minute || age < -5*time.Minute {
		return errors.New("timestamp outside the 5-minute window: refuse (replay?)")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body) // the raw body bytes, before any JSON parsing
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Split(h.Get("X-Usher-Signature"), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(sig)), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature mismatch")
}
