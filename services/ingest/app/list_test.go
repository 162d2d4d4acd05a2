package app_test

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usherhq/usher/shared/ids"
)

func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var created []string // oldest first
	for i := range 27 {
		body := fmt.Sprintf(`{"meeting_url":"%s","bot_name":"bot %d"}`, meetURL, i)
		if i%3 == 0 {
			body = fmt.Sprintf(`{"meeting_url":"%s","bot_name":"bot %d","deduplication_key":"k%d"}`, zoomURL, i, i)
		}
		created = append(created, e.create(acmeKey, body)["id"].(string))
	}
	e.create(globexKey, `{"meeting_url":"`+meetURL+`","bot_name":"other project"}`)

	page1 := e.list(acmeKey, "/api/v1/bots")
	if page1.previous != "" || page1.next == "" || len(page1.ids) != 25 {
		t.Fatalf("page 1: %d bots, previous %q, next %q", len(page1.ids), page1.previous, page1.next)
	}
	// Ids encode their creation time in milliseconds: bots created in the
	// same millisecond are in id order, the one the list uses throughout.
	for i := 1; i < len(created); i++ {
		if ids.BotIDTime(created[i]).Before(ids.BotIDTime(created[i-1])) {
			t.Fatalf("bot ids are not time-ordered: %s after %s", created[i], created[i-1])
		}
	}
	wantOrder := newestFirst(created)
	if !reflect.DeepEqual(page1.ids, wantOrder[:25]) {
		t.Fatalf("page 1 is not the 25 newest, newest first:\n%v\n%v", page1.ids, wantOrder[:25])
	}
	u, err := url.Parse(page1.next)
	if err != nil || !strings.HasPrefix(page1.next, e.ingest.base+"/api/v1/bots?cursor=") {
		t.Fatalf("next = %q is not an absolute URL with a cursor", page1.next)
	}
	page2 := e.list(acmeKey, u.RequestURI())
	if !reflect.DeepEqual(page2.ids, wantOrder[25:]) || page2.next != "" || page2.previous == "" {
		t.Fatalf("page 2: %v next %q previous %q; want %v", page2.ids, page2.next, page2.previous, wantOrder[25:])
	}
	pu, _ := url.Parse(page2.previous)
	back := e.list(acmeKey, pu.RequestURI())
	if !reflect.DeepEqual(back.ids, page1.ids) || back.previous != "" {
		t.Fatalf("previous of page 2 = %v (previous %q), want page 1", back.ids, back.previous)
	}

	// Filters: repeatable states, meeting_url, deduplication_key.
	w := e.worker("acme", created[4], "ready")
	w.emit("joining", "")
	waitFor(t, 5*time.Second, "the projector", func() bool { return e.get(acmeKey, created[4])["state"] == "joining" })
	if got := e.list(acmeKey, "/api/v1/bots?states=joining").ids; !reflect.DeepEqual(got, []string{created[4]}) {
		t.Fatalf("states=joining: %v", got)
	}
	if got := e.list(acmeKey, "/api/v1/bots?states=joining&states=ready").ids; len(got) != 25 {
		t.Fatalf("states=joining&states=ready: %d bots", len(got))
	}
	zoomBots := e.list(acmeKey, "/api/v1/bots?meeting_url="+url.QueryEscape(zoomURL))
	if len(zoomBots.ids) != 9 || zoomBots.next != "" {
		t.Fatalf("meeting_url filter: %v", zoomBots.ids)
	}
	if got := e.list(acmeKey, "/api/v1/bots?deduplication_key=k9").ids; !reflect.DeepEqual(got, []string{created[9]}) {
		t.Fatalf("deduplication_key filter: %v", got)
	}
	// A filtered list pages too: 18 ready meet bots, newest first.
	var readyMeet []string
	for i, id := range created {
		if i%3 != 0 && i != 4 {
			readyMeet = append(readyMeet, id)
		}
	}
	if got := e.list(acmeKey, "/api/v1/bots?states=ready&meeting_url="+url.QueryEscape(meetURL)).ids; !reflect.DeepEqual(got, newestFirst(readyMeet)) {
		t.Fatalf("ready meet bots: %v, want %v", got, newestFirst(readyMeet))
	}

	for _, tc := range []struct{ path, want string }{
		{"/api/v1/bots?states=bogus", `{"error":"Invalid state: bogus. Valid states are: ready, scheduled, joining, waiting_room, joined, leaving, ended, failed"}`},
		{"/api/v1/bots?states=joining,ready", `{"error":"Invalid state: joining,ready. Valid states are: ready, scheduled, joining, waiting_room, joined, leaving, ended, failed"}`},
		{"/api/v1/bots?join_at_after=nope", `{"error":"Invalid join_at_after format. Use ISO 8601 format (e.g., 2024-01-18T12:34:56Z)"}`},
		{"/api/v1/bots?join_at_before=nope", `{"error":"Invalid join_at_before format. Use ISO 8601 format (e.g., 2024-01-18T12:34:56Z)"}`},
	} {
		r := e.do("GET", tc.path, acmeKey, "")
		if r.status != 400 || strings.TrimSpace(string(r.body)) != tc.want {
			t.Errorf("%s: %d %s", tc.path, r.status, r.body)
		}
	}
	for _, c := range []string{"!!!", "bm90LWEtY3Vyc29y", url.QueryEscape("o|bot_x")} {
		r := e.do("GET", "/api/v1/bots?cursor="+c, acmeKey, "")
		if r.status != 404 || strings.TrimSpace(string(r.body)) != `{"detail":"Invalid cursor"}` {
			t.Errorf("cursor %q: %d %s", c, r.status, r.body)
		}
	}
	// Another project sees only its own bot.
	if got := e.list(globexKey, "/api/v1/bots").ids; len(got) != 1 {
		t.Fatalf("globex sees %d bots", len(got))
	}
}

func TestListJoinAtFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	base := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	var ids []string
	for i := range 3 {
		at := base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339)
		ids = append(ids, e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"b","join_at":"`+at+`"}`)["id"].(string))
	}
	e.create(acmeKey, `{"meeting_url":"`+meetURL+`","bot_name":"now"}`)
	after := url.QueryEscape(base.Format(time.RFC3339))
	before := url.QueryEscape(base.Add(2 * time.Hour).Format(time.RFC3339))
	if got := e.list(acmeKey, "/api/v1/bots?join_at_after="+after).ids; !reflect.DeepEqual(got, newestFirst([]string{ids[2], ids[1]})) {
		t.Fatalf("join_at_after (strict): %v", got)
	}
	if got := e.list(acmeKey, "/api/v1/bots?join_at_before="+before).ids; !reflect.DeepEqual(got, newestFirst([]string{ids[1], ids[0]})) {
		t.Fatalf("join_at_before (strict): %v", got)
	}
	if got := e.list(acmeKey, "/api/v1/bots?join_at_after="+after+"&join_at_before="+before).ids; !reflect.DeepEqual(got, []string{ids[1]}) {
		t.Fatalf("both: %v", got)
	}
}

type listPage struct {
	ids            []string
	next, previous string
}

func (e *env) list(key, path string) listPage {
	e.t.Helper()
	r := e.do("GET", path, key, "")
	if r.status != 200 {
		e.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	body := r.obj(e.t)
	var p listPage
	p.next, _ = body["next"].(string)
	p.previous, _ = body["previous"].(string)
	results, ok := body["results"].([]any)
	if !ok {
		e.t.Fatalf("GET %s: no results list in %s", path, r.body)
	}
	for _, b := range results {
		p.ids = append(p.ids, b.(map[string]any)["id"].(string))
	}
	return p
}

// newestFirst sorts ids the way the list does.
func newestFirst(created []string) []string {
	out := slices.Clone(created)
	slices.Sort(out)
	slices.Reverse(out)
	return out
}
