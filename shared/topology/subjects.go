// Package topology is Usher's JetStream layout as code: subject names, the
// streams, consumers and key-value buckets, and Ensure, which creates or
// updates them idempotently at start-up.
package topology

import (
	"fmt"
	"regexp"
	"strings"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
)

// Subject roots. Every subject Usher publishes or consumes is built here.
const (
	// RequestsPrefix is where upstream systems send CreateBotRequest (core NATS request-reply).
	RequestsPrefix = "usher.requests"
	// JobsPrefix is where immediate join jobs are published: usher.jobs.<platform>.
	JobsPrefix = "usher.jobs"
	// SchedulesPrefix holds scheduled join jobs until JetStream fires them: usher.schedules.<bot_id>.
	SchedulesPrefix = "usher.schedules"
	// EventsPrefix carries bot events: usher.events.<project>.<bot_id>.
	EventsPrefix = "usher.events"
	// RejectionsPrefix carries refused NATS requests: usher.rejections.<project>.
	RejectionsPrefix = "usher.rejections"
	// ControlPrefix carries commands to the worker holding a bot:
	// usher.control.<worker's token>.<project>.<bot_id> (package botcontrol).
	ControlPrefix = "usher.control"
)

// Headers Usher sets on NATS messages besides JetStream's own.
const (
	// HeaderContentType tells JSON (application/json) from protobuf (the default).
	HeaderContentType = "Content-Type"
	// HeaderStatus carries the HTTP-equivalent status of a reply.
	HeaderStatus = "Usher-Status"
	// ContentTypeJSON is the JSON content type.
	ContentTypeJSON = "application/json"
	// ContentTypeProtobuf is the protobuf content type.
	ContentTypeProtobuf = "application/protobuf"
)

var projectRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidProject reports whether name can be a project: lowercase letters,
// digits, '-' and '_', at most 63 characters, so it is always one NATS token
// and one KV key segment.
func ValidProject(name string) bool { return projectRe.MatchString(name) }

// PlatformToken is the subject token of a platform ("zoom", "teams", "meet").
func PlatformToken(p usherv1.Platform) string {
	switch p {
	case usherv1.Platform_PLATFORM_ZOOM:
		return "zoom"
	case usherv1.Platform_PLATFORM_TEAMS:
		return "teams"
	case usherv1.Platform_PLATFORM_MEET:
		return "meet"
	default:
		return "unknown"
	}
}

// RequestSubject is where a project's upstream publishes bot requests.
func RequestSubject(project string) string { return RequestsPrefix + "." + project }

// ProjectFromRequestSubject returns the project of a request subject, or an
// error when the subject is not exactly usher.requests.<project>.
func ProjectFromRequestSubject(subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, RequestsPrefix+".")
	if !ok || strings.Contains(rest, ".") || !ValidProject(rest) {
		return "", fmt.Errorf("subject %q is not %s.<project>", subject, RequestsPrefix)
	}
	return rest, nil
}

// JobSubject is where immediate jobs for a platform are published.
func JobSubject(p usherv1.Platform) string { return JobsPrefix + "." + PlatformToken(p) }

// ScheduleSubject holds the schedule of one bot's join job.
func ScheduleSubject(botID string) string { return SchedulesPrefix + "." + botID }

// EventSubject carries one bot's events.
func EventSubject(project, botID string) string {
	return EventsPrefix + "." + project + "." + botID
}

// RejectionSubject carries a project's refused NATS requests.
func RejectionSubject(project string) string { return RejectionsPrefix + "." + project }

// BotKey is the key of a bot's document in the BOTS bucket.
func BotKey(project, botID string) string { return project + "." + botID }

// JobMsgID is the Nats-Msg-Id of a bot's join job, so a retried publish is stored once.
func JobMsgID(botID string) string { return "job:" + botID }

// HandOffMsgID is the Nats-Msg-Id of the job that moves a bot to another
// worker: job:<bot_id>:h<n>, n being the seq of the bot's last event when it
// was handed off, so each hand-off is stored once however often it is retried.
func HandOffMsgID(botID string, n uint64) string { return fmt.Sprintf("%s:h%d", JobMsgID(botID), n) }
