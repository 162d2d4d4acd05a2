package app_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"time"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	bot := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)
	path := "/api/v1/bots/" + bot["id"].(string)
	before := e.counts()

	for _, tc := range []struct {
		name, method, path, auth, detail string
	}{
		{"missing", "GET", path, "", "Missing Authorization header"},
		{"missing on create", "POST", "/api/v1/bots", "", "Missing Authorization header"},
		{"one word", "GET", path, "Token", "Invalid Authorization header. Should have this format: Token <api_key>"},
		{"three words", "GET", path, "Token a b", "Invalid Authorization header. Should have this format: Token <api_key>"},
		{"basic", "GET", path, "Basic " + acmeKey, "Invalid Authorization header. Should have this format: Token <api_key>"},
		{"unknown key", "GET", path, "Token nope-nope-nope-nope-nope", "Invalid or disabled API key"},
		{"unknown key on a missing bot", "GET", "/api/v1/bots/bot_doesnotexist", "Token nope-nope-nope-nope-nope", "Invalid or disabled API key"},
		{"unknown key on a wrong method", "PUT", path, "Token nope-nope-nope-nope-nope", "Invalid or disabled API key"},
		{"missing on an unknown path", "GET", "/api/v1/nothing", "", "Missing Authorization header"},
	} {
		req, _ := http.NewRequest(tc.method, e.ingest.base+tc.path, strings.NewReader(`{"meeting_url":"`+meetURL+`","bot_name":"b"}`))
		req.Header.Set("Content-Type", "application/json")
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := resp{status: res.StatusCode, header: res.Header}
		r.body = readAll(t, res)
		if r.status != 401 || r.header.Get("WWW-Authenticate") != "Token" {
			t.Errorf("%s: %d, WWW-Authenticate %q", tc.name, r.status, r.header.Get("WWW-Authenticate"))
			continue
		}
		if got := r.obj(t); !reflect.DeepEqual(got, map[string]any{"detail": tc.detail}) {
			t.Errorf("%s: body %v", tc.name, got)
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("unauthenticated requests stored something")
	}

	for _, scheme := range []string{"Token", "token", "TOKEN", "Bearer", "bearer"} {
		r := e.do("GET", path, "", "", "Authorization", scheme+"  "+acmeKey)
		if r.status != 200 {
			t.Errorf("scheme %q: %d %s", scheme, r.status, r.body)
		}
	}
	// Another project's bot is indistinguishable from a missing one.
	for _, p := range []string{path, "/api/v1/bots/bot_0000000000000000", "/api/v1/bots/not-an-id", "/api/v1/bots/acme.*"} {
		r := e.do("GET", p, globexKey, "")
		if got := r.obj(t); r.status != 404 || !reflect.DeepEqual(got, map[string]any{"error": "Bot not found"}) {
			t.Errorf("GET %s as globex: %d %v", p, r.status, got)
		}
	}
	for _, p := range []string{path + "/leave"} {
		if r := e.do("POST", p, globexKey, ""); r.status != 404 {
			t.Errorf("POST %s as globex: %d", p, r.status)
		}
	}
	if r := e.do("DELETE", path, globexKey, ""); r.status != 404 {
		t.Errorf("DELETE as globex: %d", r.status)
	}
	if got := e.get(acmeKey, bot["id"].(string)); got["state"] != "ready" {
		t.Fatalf("globex changed acme's bot: %v", got)
	}
}

func TestRoutingErrorsAreAttendeeShaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)["id"].(string)
	for _, tc := range []struct {
		method, path string
		status       int
		body         map[string]any
	}{
		{"POST", "/api/v1/bots/", 404, map[string]any{"error": "Not found"}},
		{"GET", "/api/v1/whatever", 404, map[string]any{"error": "Not found"}},
		{"GET", "/api/v1/bots/" + id + "/participants", 404, map[string]any{"error": "Not found"}},
		{"PUT", "/api/v1/bots/" + id, 405, map[string]any{"detail": `Method "PUT" not allowed.`}},
		{"PATCH", "/api/v1/bots/" + id, 405, map[string]any{"detail": `Method "PATCH" not allowed.`}},
		{"DELETE", "/api/v1/bots", 405, map[string]any{"detail": `Method "DELETE" not allowed.`}},
		{"GET", "/api/v1/bots/" + id + "/leave", 405, map[string]any{"detail": `Method "GET" not allowed.`}},
	} {
		r := e.do(tc.method, tc.path, acmeKey, "")
		if r.status != tc.status {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.status, r.body)
			continue
		}
		if got := r.obj(t); !reflect.DeepEqual(got, tc.body) {
			t.Errorf("%s %s: %v", tc.method, tc.path, got)
		}
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if r := e.do("GET", "/healthz", "", ""); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	if r := e.do("GET", "/readyz", "", ""); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b"}`)
	m := e.metrics()
	for _, name := range []string{
		`usher_ingest_http_requests_total{code="201",route="POST /api/v1/bots"} 1`,
		`usher_ingest_jobs_published_total{kind="immediate"} 1`,
		`usher_ingest_jobs_published_total{kind="scheduled"} 0`,
		`usher_ingest_bots_created_total{source="http"} 1`,
		"usher_ingest_create_duration_seconds_bucket",
		"usher_ingest_projector_events_total",
		"usher_ingest_projector_pending_messages",
		"usher_ingest_http_request_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(m, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// No label carries a bot id or a URL.
	if strings.Contains(m, "bot_") && strings.Contains(grep(m, "bot_"), "bot_0") || strings.Contains(m, "meet.google.com") {
		t.Errorf("/metrics carries ids or URLs:\n%s", grep(m, "bot_", "meet.google"))
	}

	// Readiness follows JetStream.
	e.srv.Shutdown()
	waitFor(t, 10*time.Second, "readyz to fail without JetStream", func() bool {
		return e.do("GET", "/readyz", "", "").status == 503
	})
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.create(acmeKey, `{"meeting_url":"`+zoomURL+`","bot_name":"b","callback_settings":{"zoom_tokens_url":"https://hooks.example.com/zak?token=s3cr3t-callback"}}`)
	e.do("POST", "/api/v1/bots", acmeKey, `{"meeting_url":"`+zoomURL+`","bot_name":"b","callback_settings":{"zoom_tokens_url":"http://hooks.example.com/zak?token=s3cr3t-callback"}}`)
	e.do("GET", "/api/v1/bots", "", "", "Authorization", "Token wrong-key-s3cr3t-1234")
	r := e.do("POST", "/api/v1/bots", acmeKey, `{"meeting_url":"`+zoomURL+`","bot_name":"b","callback_settings":{"zoom_tokens_url":"ftp://hooks.example.com/?token=s3cr3t-callback"}}`)
	if strings.Contains(string(r.body), "s3cr3t") {
		t.Fatalf("an error message repeats the callback URL: %s", r.body)
	}
	e.stopIngest()
	logs := e.ingest0Logs()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for _, s := range []string{acmeKey, globexKey, "s3cr3t"} {
		if strings.Contains(logs, s) {
			t.Fatalf("logs contain %q:\n%s", s, logs)
		}
	}
}

func TestMountedHandlersShareAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnvMounted(t, nil, map[string]http.Handler{
		"/api/v1/teams/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("project=" + apiauth.Project(r.Context())))
		}),
	})
	if r := e.do("GET", "/api/v1/teams/accounts", globexKey, ""); r.status != 200 || string(r.body) != "project=globex" {
		t.Fatalf("mounted handler: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/teams/accounts", "", ""); r.status != 401 {
		t.Fatalf("mounted handler without a key: %d %s", r.status, r.body)
	}
	if m := e.metrics(); !strings.Contains(m, `route="/api/v1/teams/"`) {
		t.Fatalf("mounted route not in HTTP metrics")
	}
}
