package e2e

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/usherhq/usher/shared/topology"
)

// scanForSecrets fails the test if any secret value shows up where a user or
// an operator can read it: any service's log line, any message of the EVENTS
// stream (every bot's events and every rejection, headers included), any bot
// document of any project through the API, and ingest's and every worker's
// /metrics. Values are looked for as given and URL-encoded (a token in a
// logged link would be). canary is a value that must be found in the logs,
// the events and the bot documents (a bot id of the test): it proves each
// scan read what it should.
func scanForSecrets(t *testing.T, ctx context.Context, canary string, secretSets ...map[string]string) {
	t.Helper()
	secrets := map[string]string{}
	for _, s := range secretSets {
		maps.Copy(secrets, s)
	}
	for name, v := range secrets {
		if len(v) < 8 {
			t.Fatalf("secret %s is too short to scan for reliably", name)
		}
	}
	seen := map[string]bool{}
	check := func(where, text string) {
		t.Helper()
		if strings.Contains(text, canary) {
			seen[strings.Fields(where)[0]] = true
		}
		for _, name := range slices.Sorted(maps.Keys(secrets)) {
			v := secrets[name]
			if strings.Contains(text, v) || strings.Contains(text, url.QueryEscape(v)) {
				t.Errorf("the %s is in %s", name, where)
			}
		}
	}

	logs := fl.Logs.String()
	if logs == "" {
		t.Fatal("the fleet logged nothing: the log scan would prove nothing")
	}
	for i, line := range strings.Split(logs, "\n") {
		check("logs: line "+strconv.Itoa(i+1)+": "+redactedLine(line, secrets), line)
	}

	msgs, err := fl.StreamMessages(ctx, topology.StreamEvents)
	if err != nil {
		t.Fatalf("read EVENTS: %v", err)
	}
	if len(msgs) == 0 {
		t.Fatal("the EVENTS stream is empty: the event scan would prove nothing")
	}
	for _, m := range msgs {
		var b strings.Builder
		b.WriteString(m.Subject)
		for k, vs := range m.Header {
			b.WriteString(k + ":" + strings.Join(vs, ","))
		}
		b.Write(m.Data)
		check("events: "+m.Subject, b.String())
	}

	for _, project := range fl.Projects() {
		docs, err := fl.As(project).Bots(ctx)
		if err != nil {
			t.Fatalf("list bots of %s: %v", project, err)
		}
		for _, d := range docs {
			check("documents: a bot of project "+project, string(d))
		}
	}

	// Where secrets are kept at rest must hold them sealed: every KV bucket,
	// object store and stream the fleet reads (the work queue of jobs
	// aside: reading it would take jobs from the workers), and the Teams
	// session cache in Redis.
	streams, err := fl.StreamNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range streams {
		st, err := fl.JetStream().Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if st.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
			continue
		}
		msgs, err := fl.StreamMessages(ctx, name)
		if err != nil {
			t.Fatalf("read stream %s: %v", name, err)
		}
		for _, m := range msgs {
			check("storage: stream "+name+" subject "+m.Subject, string(m.Data))
		}
	}
	for key, value := range redisValues(t, ctx, fl.Env("REDIS_URL"), fl.Env("USHER_REDIS_KEY_PREFIX")) {
		check("storage: redis key "+key, key+" "+value)
	}

	text, err := fl.ScrapeIngest()
	if err != nil || !strings.Contains(text, "usher_ingest_") {
		t.Fatalf("scrape ingest /metrics: %v", err)
	}
	check("ingest /metrics", text)
	for _, w := range fl.Workers() {
		text, err := w.Scrape()
		if err != nil || !strings.Contains(text, "usher_worker_") {
			t.Fatalf("scrape worker /metrics: %v", err)
		}
		check("worker /metrics", text)
	}
	for _, where := range []string{"logs:", "events:", "documents:"} {
		if !seen[where] {
			t.Errorf("the scan of %s never saw %s: it did not read what it should", strings.TrimSuffix(where, ":"), canary)
		}
	}
}

// redactedLine shows a log line in a failure message with the secrets
// themselves blanked, so the test output does not leak them either.
func redactedLine(line string, secrets map[string]string) string {
	for name, v := range secrets {
		line = strings.ReplaceAll(line, v, "<"+name+">")
		line = strings.ReplaceAll(line, url.QueryEscape(v), "<"+name+", url-encoded>")
	}
	return line
}

// redisValues reads every string key under prefix (the fleet's Teams
// session cache, locks and verdicts).
func redisValues(t *testing.T, ctx context.Context, redisURL, prefix string) map[string]string {
	t.Helper()
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		v, err := rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			if strings.Contains(err.Error(), "WRONGTYPE") {
				v = "(not a string)"
			} else {
				t.Fatalf("redis GET: %v", err)
			}
		}
		out[key] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("redis SCAN: %v", err)
	}
	return out
}
