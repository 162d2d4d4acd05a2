package sim

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// Random values come from crypto/rand: tokens must be unguessable, and ids
// random so that tests sharing a simulator never collide.

const (
	digits   = "0123456789"
	lower    = "abcdefghijklmnopqrstuvwxyz"
	alphanum = digits + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + lower
)

// token returns 32 random bytes, base64url without padding (URL- and cookie-safe).
func token() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// randomFrom returns n characters drawn uniformly from alphabet.
func randomFrom(alphabet string, n int) string {
	out := make([]byte, n)
	limit := 256 - 256%len(alphabet) // reject bytes ≥ limit so the draw stays uniform
	var b [1]byte
	for i := range out {
		for {
			_, _ = rand.Read(b[:])
			if int(b[0]) < limit {
				break
			}
		}
		out[i] = alphabet[int(b[0])%len(alphabet)]
	}
	return string(out)
}

// zoomMeetingID is an 11-digit Zoom meeting number.
func zoomMeetingID() string { return randomFrom("123456789", 1) + randomFrom(digits, 10) }

// meetCode is a Meet code such as abc-defg-hij.
func meetCode() string {
	return randomFrom(lower, 3) + "-" + randomFrom(lower, 4) + "-" + randomFrom(lower, 3)
}

// uuid is a random (version 4) UUID.
func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
