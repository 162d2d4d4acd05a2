package fleet

import (
	"net/http"
	"sync"
)

// simTap stands between the browsers and the simulator. It records every
// cookie the simulator sets on a browser (the Microsoft session cookies among
// them), so a test can scan the fleet's logs, events and metrics for their
// values; and it lets a test answer requests in the simulator's place (an
// outage, a lost session).
type simTap struct {
	mu        sync.Mutex
	cookies   []*http.Cookie
	intercept func(http.ResponseWriter, *http.Request) bool
}

func (t *simTap) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.mu.Lock()
		intercept := t.intercept
		t.mu.Unlock()
		if intercept != nil && intercept(w, r) {
			return
		}
		h.ServeHTTP(&tapWriter{ResponseWriter: w, tap: t}, r)
	})
}

// InterceptSim makes f answer the simulator's HTTP requests first: when f
// returns true it has answered and the simulator never sees the request.
// Nil removes the interceptor.
func (f *Fleet) InterceptSim(fn func(http.ResponseWriter, *http.Request) bool) {
	f.tap.mu.Lock()
	defer f.tap.mu.Unlock()
	f.tap.intercept = fn
}

func (t *simTap) record(h http.Header) {
	resp := http.Response{Header: h}
	cs := resp.Cookies()
	if len(cs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cookies = append(t.cookies, cs...)
}

// tapWriter sees the response headers as they are written.
type tapWriter struct {
	http.ResponseWriter
	tap   *simTap
	wrote bool
}

func (w *tapWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.tap.record(w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tapWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *tapWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// SimCookies returns every cookie the simulator has set so far, in order
// (name, value and attributes as sent in Set-Cookie).
func (f *Fleet) SimCookies() []*http.Cookie {
	f.tap.mu.Lock()
	defer f.tap.mu.Unlock()
	return append([]*http.Cookie(nil), f.tap.cookies...)
}
