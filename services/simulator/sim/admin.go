package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/usherhq/usher/shared/secret"
)

// maxBody bounds admin and page API request bodies.
const maxBody = 1 << 20

// writeError answers {"error": "..."} with the status of the error's kind.
func (s *Simulator) writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	default:
		s.log.Error("admin request", "err", err)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// decodeBody decodes a JSON object into dst (a pointer to a struct),
// refusing unknown fields and wrong types with messages naming the field.
// allowEmpty accepts an empty body (dst keeps its zero value).
func decodeBody(r *http.Request, dst any, allowEmpty bool) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return invalidf("read request body: %v", err)
	}
	if len(body) > maxBody {
		return invalidf("request body must be at most %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return invalidf("request body must be a JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return invalidf("request body must be a JSON object")
	}
	known := jsonFields(reflect.TypeOf(dst).Elem())
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return invalidf("unknown field %q (known fields: %s)", k, strings.Join(known, ", "))
		}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return invalidf("%s must be %s", te.Field, jsonKind(te.Type))
		}
		return invalidf("request body is not valid JSON")
	}
	return nil
}

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	return out
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64, reflect.Int32:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	default:
		return "an object"
	}
}

func (s *Simulator) handleCreateMeeting(w http.ResponseWriter, r *http.Request) {
	var spec MeetingSpec
	if err := decodeBody(r, &spec, false); err != nil {
		s.writeError(w, err)
		return
	}
	m, err := s.createMeeting(spec, s.baseURL(r))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, m)
}

func (s *Simulator) handleListMeetings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"meetings": s.meetingViews(s.baseURL(r))})
}

func (s *Simulator) handleGetMeeting(w http.ResponseWriter, r *http.Request) {
	m, err := s.meetingView(r.PathValue("id"), s.baseURL(r))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// nameAction serves POST /admin/meetings/{id}/<action> {"name": "..."}.
func (s *Simulator) nameAction(f func(id, name, base string) (Meeting, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := decodeBody(r, &body, false); err != nil {
			s.writeError(w, err)
			return
		}
		m, err := f(r.PathValue("id"), body.Name, s.baseURL(r))
		if err != nil {
			s.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, m)
	}
}

func (s *Simulator) handleEnd(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(r, &body, true); err != nil {
		s.writeError(w, err)
		return
	}
	m, err := s.end(r.PathValue("id"), s.baseURL(r))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

type accountBody struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	Behavior    string `json:"behavior"`
}

func (s *Simulator) handlePutAccount(w http.ResponseWriter, r *http.Request) {
	var body accountBody
	if err := decodeBody(r, &body, false); err != nil {
		s.writeError(w, err)
		return
	}
	a := MicrosoftAccount{Email: body.Email, Password: secret.String(body.Password), DisplayName: body.DisplayName, Behavior: body.Behavior}
	acct, created, err := s.putMicrosoftAccount(a)
	if err != nil {
		s.writeError(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, map[string]string{"email": acct.email, "display_name": acct.displayName, "behavior": acct.behavior})
}

func (s *Simulator) handleExpireSessions(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Email string `json:"email"`
	}
	if err := decodeBody(r, &body, false); err != nil {
		s.writeError(w, err)
		return
	}
	n, err := s.ExpireMicrosoftSessions(body.Email)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"email": strings.TrimSpace(body.Email), "expired": n})
}

func (s *Simulator) handlePutZoomUser(w http.ResponseWriter, r *http.Request) {
	var u ZoomUser
	if err := decodeBody(r, &u, false); err != nil {
		s.writeError(w, err)
		return
	}
	stored, created, err := s.putZoomUser(u)
	if err != nil {
		s.writeError(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, stored)
}

func (s *Simulator) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Simulator) handleReset(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(r, &body, true); err != nil {
		s.writeError(w, err)
		return
	}
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Simulator) handleAdminNotFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no admin endpoint " + r.Method + " " + r.URL.Path})
}
