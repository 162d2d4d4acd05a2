package zoomtoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/usherhq/usher/shared/secret"
)

// Request headers that let the customer verify a callback and refuse replays
// (docs/zoom-tokens.md shows how).
const (
	// HeaderTimestamp is the signing time in unix seconds.
	HeaderTimestamp = "X-Usher-Timestamp"
	// HeaderSignature is "v1=<hex>", one per project secret, comma-separated.
	HeaderSignature = "X-Usher-Signature"
)

// signatureScheme prefixes each signature, so the scheme can change later
// without breaking receivers that check it.
const signatureScheme = "v1="

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
		b.WriteString(signatureScheme)
		b.WriteString(hex.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}
