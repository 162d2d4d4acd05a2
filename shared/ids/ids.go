// Package ids makes bot ids: "bot_" and 16 characters of [0-9A-Za-z], the
// shape Attendee clients expect. The first 8 characters encode the creation
// time in milliseconds (base 62, digits before letters, so ids sort by
// creation time as plain strings); the last 8 are random.
package ids

import (
	"crypto/rand"
	"regexp"
	"sync"
	"time"
)

// BotPrefix starts every bot id.
const BotPrefix = "bot_"

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

var botIDRe = regexp.MustCompile(`^bot_[0-9A-Za-z]{16}$`)

// last remembers the previous id's time and random part, so ids made by one
// process within one millisecond still sort in creation order.
var last struct {
	sync.Mutex
	ms   uint64
	rand [8]byte
}

// NewBotID returns a new bot id created at now. Ids made by one process are
// strictly increasing: within one millisecond the random part is the previous
// one plus one (it starts at a random value, so ids stay unguessable across ms).
func NewBotID(now time.Time) string {
	var b [len(BotPrefix) + 16]byte
	copy(b[:], BotPrefix)
	ms := uint64(now.UnixMilli())
	last.Lock()
	if ms <= last.ms && !increment(&last.rand) {
		ms = last.ms
	} else if ms <= last.ms {
		ms = last.ms
	} else {
		last.ms = ms
		last.rand = randomDigits()
	}
	r := last.rand
	last.Unlock()
	for i := len(BotPrefix) + 7; i >= len(BotPrefix); i-- {
		b[i] = alphabet[ms%62]
		ms /= 62
	}
	for i, d := range r {
		b[len(BotPrefix)+8+i] = alphabet[d]
	}
	return string(b[:])
}

// increment adds one to base-62 digits; it reports false on overflow (the
// digits wrap to zero, which cannot happen in practice: 62^8 ids in one ms).
func increment(d *[8]byte) bool {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] < 61 {
			d[i]++
			return true
		}
		d[i] = 0
	}
	return false
}

func randomDigits() [8]byte {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+).
	for i, v := range r {
		// 248 = 4*62: rejecting larger bytes keeps the draw uniform.
		for v >= 248 {
			var one [1]byte
			_, _ = rand.Read(one[:])
			v = one[0]
		}
		r[i] = v % 62
	}
	// Leave headroom so increments within a millisecond never overflow.
	r[0] %= 31
	return r
}

// ValidBotID reports whether s has the shape of a bot id.
func ValidBotID(s string) bool { return botIDRe.MatchString(s) }

// BotIDTime returns the creation time encoded in a valid bot id.
func BotIDTime(id string) time.Time {
	var ms uint64
	for i := len(BotPrefix); i < len(BotPrefix)+8 && i < len(id); i++ {
		c := id[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'A' && c <= 'Z':
			d = uint64(c-'A') + 10
		case c >= 'a' && c <= 'z':
			d = uint64(c-'a') + 36
		}
		ms = ms*62 + d
	}
	return time.UnixMilli(int64(ms)).UTC()
}
