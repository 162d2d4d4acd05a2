package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHTTPLabelsByRoutePatternNeverByPath(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/bots/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	h := NewHTTP(reg, "test").Wrap(mux)
	for _, p := range []string{"/api/v1/bots/bot_1", "/api/v1/bots/bot_2", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := rec.Body.String()
	if !strings.Contains(out, `usher_test_http_requests_total{code="404",route="GET /api/v1/bots/{id}"} 2`) ||
		!strings.Contains(out, `route="unmatched"`) || strings.Contains(out, "bot_1") {
		t.Fatalf("metrics:\n%s", out)
	}
}
