package botrequest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	usherv1 "github.com/usherhq/usher/proto/gen/usher/v1"
)

// DecodeProto validates a protobuf CreateBotRequest (a NATS request without
// a JSON content type). Bytes that are not such a message give an
// *EncodingError; fields the message does not define are refused like
// unknown JSON fields.
func (v *Validator) DecodeProto(data []byte) (Spec, error) {
	var req usherv1.CreateBotRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		return Spec{}, &EncodingError{Reason: err.Error()}
	}
	return v.FromProto(&req)
}

// FromProto validates a CreateBotRequest. Protobuf cannot tell an empty
// string or a zero from an unset field, so "" and 0 mean "not given" (and
// defaults apply).
func (v *Validator) FromProto(req *usherv1.CreateBotRequest) (Spec, error) {
	var (
		in   input
		errs Errors
	)
	if unknown := unknownFieldNumbers(req); len(unknown) > 0 {
		errs.add(NonFieldErrors, fmt.Sprintf("Unexpected field(s): protobuf field number(s) %s. Allowed fields are: %s",
			strings.Join(unknown, ", "), strings.Join(allowedFields, ", ")))
	}
	if req.GetMeetingUrl() != "" {
		in.meetingURL = some(req.GetMeetingUrl())
	}
	if req.GetBotName() != "" {
		in.botName = some(req.GetBotName())
	}
	if len(req.GetMetadata()) > 0 {
		in.metadata = some(req.GetMetadata())
	}
	if ts := req.GetJoinAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			errs.add(fieldJoinAt, MsgDatetimeFormat)
		} else {
			in.joinAt = some(ts.AsTime())
		}
	}
	if req.GetDeduplicationKey() != "" {
		in.deduplicationKey = some(req.GetDeduplicationKey())
	}
	if cb := req.GetCallbackSettings(); cb != nil && cb.GetZoomTokensUrl() != "" {
		in.zoomTokensURL = some(cb.GetZoomTokensUrl())
	}
	if ts := req.GetTeamsSettings(); ts != nil {
		in.teams = Teams{UseLogin: ts.GetUseLogin(), LoginMode: ts.GetLoginMode()}
	}
	if al := req.GetAutomaticLeaveSettings(); al != nil {
		if n := al.GetWaitingRoomTimeoutSeconds(); n > 0 {
			in.waitingRoom = some(int64(n))
		}
		if n := al.GetMaxDurationSeconds(); n > 0 {
			in.maxDuration = some(int64(n))
		}
		if n := al.GetOnlyParticipantTimeoutSeconds(); n > 0 {
			in.onlyParticipant = some(int64(n))
		}
	}
	return v.validate(in, errs)
}

// unknownFieldNumbers lists the field numbers (as "6" or
// "teams_settings.9") that the request carries but this version of
// usher.v1 does not define: a newer client's field Usher would otherwise
// drop silently.
func unknownFieldNumbers(m proto.Message) []string {
	var out []string
	var walk func(prefix string, msg protoreflect.Message)
	walk = func(prefix string, msg protoreflect.Message) {
		b := msg.GetUnknown()
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				break
			}
			out = append(out, prefix+strconv.Itoa(int(num)))
			b = b[n:]
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				break
			}
			b = b[m:]
		}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
				walk(prefix+string(fd.Name())+".", v.Message())
			}
			return true
		})
	}
	walk("", m.ProtoReflect())
	return slices.Compact(out)
}
