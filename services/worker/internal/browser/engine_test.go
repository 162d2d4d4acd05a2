package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/logging"
)

func TestOpenIsolatesCookiesBetweenTabs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "who", Value: "first"})
		}
		c, err := r.Cookie("who")
		v := "none"
		if err == nil {
			v = c.Value
		}
		_, _ = w.Write([]byte("<html><body><p id=v>" + v + "</p></body></html>"))
	}))
	t.Cleanup(srv.Close)
	eng := New(Config{Bin: "/usr/bin/chromium", Headless: true, MaxContexts: 2}, logging.Discard(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	a, err := eng.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Page().Navigate(srv.URL + "/set"); err != nil {
		t.Fatal(err)
	}
	if err := a.Page().Navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	el, err := a.Page().Element("#v")
	if err != nil {
		t.Fatal(err)
	}
	if txt, _ := el.Text(); txt != "first" {
		t.Fatalf("tab a sees cookie %q, want first", txt)
	}
	b, err := eng.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Page().Navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	el, err = b.Page().Element("#v")
	if err != nil {
		t.Fatal(err)
	}
	if txt, _ := el.Text(); txt != "none" {
		t.Fatalf("tab b sees cookie %q, want none (contexts must not share cookies)", txt)
	}
}
