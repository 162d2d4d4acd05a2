// Package meetingurl recognises and normalises meeting links: Zoom, Microsoft
// Teams and Google Meet in their real forms, plus the simulator's links when a
// simulator is configured. Anything else — look-alike hosts, other schemes,
// credentials in the URL — is refused with a reason a user can act on.
package meetingurl

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
)

// MaxLength bounds a meeting URL.
const MaxLength = 2048

// Meeting is a recognised meeting link.
type Meeting struct {
	Platform usherv1.Platform
	// URL is the normalised link: https, lower-case host, only the query
	// parameters the platform needs (Zoom pwd/tk, Teams context/p).
	URL string
	// ID is the platform's meeting id (Zoom number or personal link name, Teams
	// meeting id or thread, Meet code).
	ID string
	// Simulated is true for the simulator's links.
	Simulated bool
}

// Options configure recognition.
type Options struct {
	// SimulatorURL is the simulator's base URL (for example
	// http://127.0.0.1:8090). Empty: simulator links are refused.
	SimulatorURL string
}

// ErrInvalid is wrapped by every refusal.
var ErrInvalid = errors.New("invalid meeting URL")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var (
	zoomIDRe      = regexp.MustCompile(`^[0-9]{9,12}$`)
	zoomVanityRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	zoomPwdRe     = regexp.MustCompile(`^[A-Za-z0-9]+(\.\d+)?`)
	hostLabelRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	meetCodeRe    = regexp.MustCompile(`^[a-z]{3}-[a-z]{4}-[a-z]{3}$`)
	teamsMeetIDRe = regexp.MustCompile(`^[0-9]{6,20}$`)
	teamsPassRe   = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	tokenRe       = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,512}$`)
)

// Parse recognises raw and returns the normalised meeting.
func Parse(raw string, opts Options) (Meeting, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Meeting{}, invalid("empty")
	}
	if len(raw) > MaxLength {
		return Meeting{}, invalid("longer than %d characters", MaxLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Meeting{}, invalid("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		if scheme == "" {
			return Meeting{}, invalid("must start with https://")
		}
		return Meeting{}, invalid("scheme %q is not allowed, use https://", scheme)
	}
	if u.User != nil {
		return Meeting{}, invalid("credentials in the URL are not allowed")
	}
	if u.Host == "" {
		return Meeting{}, invalid("no host")
	}
	if m, ok, err := parseSimulator(u, opts); ok || err != nil {
		return m, err
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if u.Port() != "" {
		return Meeting{}, invalid("a port is not allowed in a %s link", host)
	}
	switch {
	case isZoomHost(host):
		m, err := parseZoom(u.Path, u.Query())
		if err != nil {
			return Meeting{}, err
		}
		if h, ok := strings.CutSuffix(host, "zoom.com"); ok {
			host = h + "zoom.us"
		}
		m.URL = "https://" + host + m.URL
		return m, nil
	case host == "teams.microsoft.com" || host == "teams.live.com":
		m, err := parseTeams(u)
		if err != nil {
			return Meeting{}, err
		}
		m.URL = "https://" + host + m.URL
		return m, nil
	case host == "meet.google.com":
		m, err := parseMeet(u.Path)
		if err != nil {
			return Meeting{}, err
		}
		m.URL = "https://meet.google.com" + m.URL
		return m, nil
	}
	return Meeting{}, invalid("the host %s is not Zoom, Microsoft Teams or Google Meet", host)
}

// isZoomHost accepts zoom.us, zoom.com and their subdomains (vanity and
// regional hosts such as acme.zoom.us or us02web.zoom.us), and nothing that
// merely contains them (zoom.us.evil.com, evilzoom.us).
func isZoomHost(host string) bool {
	for _, apex := range []string{"zoom.us", "zoom.com"} {
		if host == apex {
			return true
		}
		sub, ok := strings.CutSuffix(host, "."+apex)
		if !ok {
			continue
		}
		for label := range strings.SplitSeq(sub, ".") {
			if !hostLabelRe.MatchString(label) {
				return false
			}
		}
		return true
	}
	return false
}

// parseZoom returns the meeting with URL set to the normalised path and query.
func parseZoom(path string, q url.Values) (Meeting, error) {
	parts := splitPath(path)
	var id string
	vanity := false
	switch {
	case len(parts) == 2 && (parts[0] == "j" || parts[0] == "w" || parts[0] == "s"):
		id = parts[1]
	case len(parts) == 3 && parts[0] == "wc" && parts[1] == "join":
		id = parts[2]
	case len(parts) >= 2 && parts[0] == "wc" && zoomIDRe.MatchString(parts[1]):
		id = parts[1]
	case len(parts) == 2 && parts[0] == "my":
		id, vanity = parts[1], true
	default:
		return Meeting{}, invalid("a Zoom link looks like https://zoom.us/j/<meeting id>?pwd=<passcode>")
	}
	if vanity {
		if !zoomVanityRe.MatchString(id) {
			return Meeting{}, invalid("the Zoom personal link name %q is not valid", id)
		}
	} else if !zoomIDRe.MatchString(id) {
		return Meeting{}, invalid("the Zoom meeting id must be 9 to 12 digits")
	}
	out := url.Values{}
	if pwd := zoomPwdRe.FindString(q.Get("pwd")); pwd != "" {
		out.Set("pwd", pwd)
	}
	if tk := q.Get("tk"); tk != "" && tokenRe.MatchString(tk) {
		out.Set("tk", tk)
	}
	p := "/j/" + id
	if vanity {
		p = "/my/" + id
	}
	if len(out) > 0 {
		p += "?" + out.Encode()
	}
	return Meeting{Platform: usherv1.Platform_PLATFORM_ZOOM, URL: p, ID: id}, nil
}

// parseTeams accepts /l/meetup-join/<thread>/<message>?context=…, /meet/<id>?p=…,
// and the launcher and v2 wrappers around them.
func parseTeams(u *url.URL) (Meeting, error) {
	path, query := u.EscapedPath(), u.Query()
	// Launcher: /dl/launcher/launcher.html?url=/_#/l/meetup-join/…
	if strings.HasPrefix(path, "/dl/launcher/") {
		inner := query.Get("url")
		inner = strings.TrimPrefix(inner, "/_#")
		iu, err := url.Parse(inner)
		if err != nil {
			return Meeting{}, invalid("the Teams launcher link does not contain a meeting link")
		}
		path, query = iu.EscapedPath(), iu.Query()
	}
	// v2: /v2/?meetingjoin=true#/l/meetup-join/…
	if (path == "/v2/" || path == "/v2" || path == "/" || path == "") && strings.HasPrefix(u.Fragment, "/l/meetup-join/") {
		iu, err := url.Parse(u.EscapedFragment())
		if err != nil {
			return Meeting{}, invalid("the Teams link fragment is not a meeting link")
		}
		path, query = iu.EscapedPath(), iu.Query()
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[0] == "l" && parts[1] == "meetup-join":
		thread, err := url.PathUnescape(parts[2])
		if err != nil || !strings.Contains(thread, "@thread") {
			return Meeting{}, invalid("the Teams meeting thread id is not valid")
		}
		if _, err := url.PathUnescape(parts[3]); err != nil || parts[3] == "" {
			return Meeting{}, invalid("the Teams meeting message id is not valid")
		}
		p := "/l/meetup-join/" + parts[2] + "/" + parts[3]
		if ctx := query.Get("context"); ctx != "" {
			p += "?context=" + url.QueryEscape(ctx)
		}
		return Meeting{Platform: usherv1.Platform_PLATFORM_TEAMS, URL: p, ID: thread}, nil
	case len(parts) == 2 && parts[0] == "meet":
		if !teamsMeetIDRe.MatchString(parts[1]) {
			return Meeting{}, invalid("the Teams meeting id must be digits")
		}
		p := "/meet/" + parts[1]
		if pass := query.Get("p"); pass != "" {
			if !teamsPassRe.MatchString(pass) {
				return Meeting{}, invalid("the Teams passcode is not valid")
			}
			p += "?p=" + pass
		}
		return Meeting{Platform: usherv1.Platform_PLATFORM_TEAMS, URL: p, ID: parts[1]}, nil
	}
	return Meeting{}, invalid("a Teams link looks like https://teams.microsoft.com/l/meetup-join/… or https://teams.microsoft.com/meet/<id>?p=<passcode>")
}

func parseMeet(path string) (Meeting, error) {
	parts := splitPath(path)
	if len(parts) != 1 || !meetCodeRe.MatchString(strings.ToLower(parts[0])) {
		return Meeting{}, invalid("a Google Meet link looks like https://meet.google.com/abc-defg-hij")
	}
	code := strings.ToLower(parts[0])
	return Meeting{Platform: usherv1.Platform_PLATFORM_MEET, URL: "/" + code, ID: code}, nil
}

// parseSimulator recognises <simulator>/zoom/…, <simulator>/teams/… and
// <simulator>/meet/<code>: the real paths under a platform prefix.
func parseSimulator(u *url.URL, opts Options) (Meeting, bool, error) {
	if opts.SimulatorURL == "" {
		return Meeting{}, false, nil
	}
	base, err := url.Parse(opts.SimulatorURL)
	if err != nil || !strings.EqualFold(base.Host, u.Host) || !strings.EqualFold(base.Scheme, u.Scheme) {
		return Meeting{}, false, nil
	}
	prefix := strings.TrimSuffix(base.EscapedPath(), "/")
	rest, ok := strings.CutPrefix(u.EscapedPath(), prefix+"/")
	if !ok {
		return Meeting{}, true, invalid("not a simulator meeting link")
	}
	platform, sub, _ := strings.Cut(rest, "/")
	root := strings.TrimSuffix(base.Scheme+"://"+base.Host+prefix, "/") + "/" + platform
	var m Meeting
	switch platform {
	case "zoom":
		m, err = parseZoom("/"+sub, u.Query())
	case "teams":
		su := *u
		su.Path, su.RawPath = "/"+sub, ""
		if p, perr := url.PathUnescape("/" + sub); perr == nil {
			su.Path = p
			su.RawPath = "/" + sub
		}
		m, err = parseTeams(&su)
	case "meet":
		m, err = parseMeet("/" + sub)
	default:
		return Meeting{}, true, invalid("the simulator has no platform %q", platform)
	}
	if err != nil {
		return Meeting{}, true, err
	}
	m.URL = root + m.URL
	m.Simulated = true
	return m, true, nil
}

func splitPath(p string) []string {
	var out []string
	for s := range strings.SplitSeq(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
