package botrequest

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MsgDatetimeFormat is DRF's message for a datetime it cannot read.
const MsgDatetimeFormat = "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."

// ErrDatetimeFormat is returned by ParseDatetime.
var ErrDatetimeFormat = errors.New("datetime has wrong format")

// Django's parse_datetime (as Attendee reads join_at): a T or a space between
// date and time, optional seconds and up to 6 fraction digits (more are
// ignored), an optional Z, ±HH, ±HHMM or ±HH:MM. A bare date means midnight.
var datetimeRe = regexp.MustCompile(`^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:[.,](\d{1,6})\d{0,6})?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?)?$`)

// ParseDatetime reads a datetime the way Attendee does. A value without an
// offset is UTC.
func ParseDatetime(s string) (time.Time, error) {
	m := datetimeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return time.Time{}, ErrDatetimeFormat
	}
	num := func(i int) int {
		if m[i] == "" {
			return 0
		}
		n, _ := strconv.Atoi(m[i])
		return n
	}
	year, month, day := num(1), num(2), num(3)
	hour, minute, sec := num(4), num(5), num(6)
	micro := 0
	if m[7] != "" {
		frac := m[7] + strings.Repeat("0", 6-len(m[7]))
		micro, _ = strconv.Atoi(frac)
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, ErrDatetimeFormat
	}
	loc := time.UTC
	if tz := m[8]; tz != "" && tz != "Z" {
		sign := 1
		if tz[0] == '-' {
			sign = -1
		}
		digits := strings.ReplaceAll(tz[1:], ":", "")
		hh, _ := strconv.Atoi(digits[:2])
		mm := 0
		if len(digits) == 4 {
			mm, _ = strconv.Atoi(digits[2:])
		}
		if hh > 23 || mm > 59 {
			return time.Time{}, ErrDatetimeFormat
		}
		loc = time.FixedZone("", sign*(hh*3600+mm*60))
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, loc)
	if t.Day() != day || int(t.Month()) != month {
		return time.Time{}, ErrDatetimeFormat // 2026-02-30 rolled over
	}
	return t.UTC(), nil
}
