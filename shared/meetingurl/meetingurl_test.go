package meetingurl

import (
	"errors"
	"testing"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
)

func TestParseRecognisesRealLinks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in       string
		platform usherv1.Platform
		want     string
	}{
		{"https://zoom.us/j/85012345678?pwd=abc123", usherv1.Platform_PLATFORM_ZOOM, "https://zoom.us/j/85012345678?pwd=abc123"},
		{"  https://us02web.zoom.com/j/85012345678?pwd=abc123.1&uname=x#frag ", usherv1.Platform_PLATFORM_ZOOM, "https://us02web.zoom.us/j/85012345678?pwd=abc123.1"},
		{"https://acme.zoom.us/j/850123456", usherv1.Platform_PLATFORM_ZOOM, "https://acme.zoom.us/j/850123456"},
		{"https://zoom.us/wc/join/85012345678?pwd=x1", usherv1.Platform_PLATFORM_ZOOM, "https://zoom.us/j/85012345678?pwd=x1"},
		{"https://app.zoom.us/wc/85012345678/join?pwd=x1", usherv1.Platform_PLATFORM_ZOOM, "https://app.zoom.us/j/85012345678?pwd=x1"},
		{"https://acme.zoom.us/my/jane.doe", usherv1.Platform_PLATFORM_ZOOM, "https://acme.zoom.us/my/jane.doe"},
		{"http://ZOOM.US/j/85012345678", usherv1.Platform_PLATFORM_ZOOM, "https://zoom.us/j/85012345678"},
		{`https://teams.microsoft.com/l/meetup-join/19%3ameeting_N2E3@thread.v2/0?context={"Tid":"t","Oid":"o"}`, usherv1.Platform_PLATFORM_TEAMS,
			"https://teams.microsoft.com/l/meetup-join/19%3ameeting_N2E3@thread.v2/0?context=%7B%22Tid%22%3A%22t%22%2C%22Oid%22%3A%22o%22%7D"},
		{"https://teams.live.com/meet/9876543210123?p=AbCd12", usherv1.Platform_PLATFORM_TEAMS, "https://teams.live.com/meet/9876543210123?p=AbCd12"},
		{"https://teams.microsoft.com/meet/2233445566?p=xyz", usherv1.Platform_PLATFORM_TEAMS, "https://teams.microsoft.com/meet/2233445566?p=xyz"},
		{"https://teams.microsoft.com/dl/launcher/launcher.html?url=%2F_%23%2Fl%2Fmeetup-join%2F19%253ameeting_X%2540thread.v2%2F0&type=meetup-join", usherv1.Platform_PLATFORM_TEAMS,
			"https://teams.microsoft.com/l/meetup-join/19%3ameeting_X%40thread.v2/0"},
		{"https://teams.microsoft.com/v2/?meetingjoin=true#/l/meetup-join/19%3ameeting_Y%40thread.v2/0", usherv1.Platform_PLATFORM_TEAMS,
			"https://teams.microsoft.com/l/meetup-join/19%3ameeting_Y%40thread.v2/0"},
		{"https://meet.google.com/abc-defg-hij?authuser=0", usherv1.Platform_PLATFORM_MEET, "https://meet.google.com/abc-defg-hij"},
		{"https://meet.google.com/ABC-DEFG-HIJ", usherv1.Platform_PLATFORM_MEET, "https://meet.google.com/abc-defg-hij"},
	}
	for _, c := range cases {
		m, err := Parse(c.in, Options{})
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if m.Platform != c.platform || m.URL != c.want || m.Simulated {
			t.Errorf("Parse(%q) = %v %q simulated=%v, want %v %q", c.in, m.Platform, m.URL, m.Simulated, c.platform, c.want)
		}
	}
}

func TestParseRefusesLookAlikesAndOtherSchemes(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		"   ",
		"javascript:alert(1)",
		"file:///etc/passwd",
		"data:text/html,hi",
		"zoom.us/j/85012345678",
		"https://zoom.us.evil.com/j/85012345678",
		"https://evilzoom.us/j/85012345678",
		"https://zoom.us@evil.com/j/85012345678",
		"https://user:pw@zoom.us/j/85012345678",
		"https://zoom.us:8443/j/85012345678",
		"https://zoom.us/j/12",
		"https://zoom.us/profile",
		"https://teams.microsoft.com.evil.com/meet/123456?p=x",
		"https://teams.microsoft.com/meet/abc?p=x",
		"https://meet.google.com.evil.com/abc-defg-hij",
		"https://meet.google.com/abc",
		"https://example.com/x",
		"http://127.0.0.1:8090/zoom/j/85012345678",
		"https://zoom.us/j/" + string(make([]byte, 3000)),
	} {
		if m, err := Parse(in, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrInvalid", in, m, err)
		}
	}
}

func TestParseSimulatorLinksOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	opts := Options{SimulatorURL: "http://127.0.0.1:8090"}
	cases := []struct {
		in       string
		platform usherv1.Platform
		want     string
	}{
		{"http://127.0.0.1:8090/zoom/j/85012345678?pwd=abc", usherv1.Platform_PLATFORM_ZOOM, "http://127.0.0.1:8090/zoom/j/85012345678?pwd=abc"},
		{"http://127.0.0.1:8090/teams/meet/1234567890?p=pass", usherv1.Platform_PLATFORM_TEAMS, "http://127.0.0.1:8090/teams/meet/1234567890?p=pass"},
		{"http://127.0.0.1:8090/teams/l/meetup-join/19%3ameeting_Q%40thread.v2/0", usherv1.Platform_PLATFORM_TEAMS, "http://127.0.0.1:8090/teams/l/meetup-join/19%3ameeting_Q%40thread.v2/0"},
		{"http://127.0.0.1:8090/meet/abc-defg-hij", usherv1.Platform_PLATFORM_MEET, "http://127.0.0.1:8090/meet/abc-defg-hij"},
	}
	for _, c := range cases {
		m, err := Parse(c.in, opts)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if m.Platform != c.platform || m.URL != c.want || !m.Simulated {
			t.Errorf("Parse(%q) = %v %q simulated=%v, want %v %q", c.in, m.Platform, m.URL, m.Simulated, c.platform, c.want)
		}
		if _, err := Parse(c.in, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) without a simulator: %v, want ErrInvalid", c.in, err)
		}
	}
	if _, err := Parse("http://127.0.0.1:8090/skype/x", opts); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown simulator platform accepted: %v", err)
	}
}
