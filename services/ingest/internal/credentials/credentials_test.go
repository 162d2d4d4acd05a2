package credentials_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/ingest/internal/apiauth"
	"github.com/usherhq/usher/services/ingest/internal/credentials"
	"github.com/usherhq/usher/shared/logging"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/teamsaccount"
	"github.com/usherhq/usher/shared/topology"
)

// TestMain fails the package on a leaked goroutine, except the one nats.go
// itself can leak from a screenshot's ObjectStore.Put (natstest.ObjectPutLeak).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(natstest.ObjectPutLeak))
}

const (
	keyAcme  = "acme-api-key-0123456789"
	keyOther = "other-api-key-0123456789"
)

type env struct {
	t     *testing.T
	topo  *topology.Topology
	ring  *sealbox.Ring
	spec  secret.String // the ring's one key, "k1:..."
	store *credentials.Store
	srv   *httptest.Server
	logs  *logging.Buffer
}

func newRing(t *testing.T, kids ...string) (*sealbox.Ring, []secret.String) {
	t.Helper()
	specs := make([]secret.String, len(kids))
	parts := make([]string, len(kids))
	for i, kid := range kids {
		s, err := sealbox.NewKeySpec(kid)
		if err != nil {
			t.Fatal(err)
		}
		specs[i], parts[i] = s, s.Reveal()
	}
	r, err := sealbox.ParseKeys(secret.String(strings.Join(parts, ",")))
	if err != nil {
		t.Fatal(err)
	}
	return r, specs
}

func newEnv(t *testing.T, maxAccounts int) *env {
	t.Helper()
	js := natstest.New(t)
	topo := js.Topology()
	ring, specs := newRing(t, "k1")
	logs := &logging.Buffer{}
	log := logging.New(logs, logging.Config{Level: "debug", Format: "json"}, "ingest")
	store := credentials.NewStore(topo.TeamsAccounts, topo.Screenshots, ring, maxAccounts)
	keys, err := apiauth.ParseKeys("acme:" + keyAcme + ",other:" + keyOther)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(credentials.PathPrefix, keys.Middleware(credentials.NewHandler(store, log)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, topo: topo, ring: ring, spec: specs[0], store: store, srv: srv, logs: logs}
}

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

func (e *env) do(method, path, key, contentType string, body string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Token "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (e *env) put(key, email, password string) reply {
	e.t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return e.do(http.MethodPut, credentials.PathTeams, key, "application/json", string(b))
}

func TestPutListGetDeleteNeverShowsPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	const pw = "S3cret-Pa55word!"

	r := e.put(keyAcme, "bot@contoso.com", pw)
	if r.Status != http.StatusCreated {
		t.Fatalf("PUT = %d %s", r.Status, r.Body)
	}
	acct := r.json(t)
	id, _ := acct["id"].(string)
	if !teamsaccount.ValidAccountID(id) || acct["status"] != "ok" || acct["email"] != "bot@contoso.com" {
		t.Fatalf("PUT body = %s", r.Body)
	}

	// The same email again (another case) updates the same account.
	r = e.put(keyAcme, "Bot@Contoso.com", pw+"2")
	if r.Status != http.StatusOK || r.json(t)["id"] != id {
		t.Fatalf("second PUT = %d %s", r.Status, r.Body)
	}
	if r := e.put(keyAcme, "second@contoso.com", pw); r.Status != http.StatusCreated {
		t.Fatalf("PUT second account = %d %s", r.Status, r.Body)
	}

	list := e.do(http.MethodGet, credentials.PathTeams, keyAcme, "", "")
	if list.Status != http.StatusOK {
		t.Fatalf("GET = %d %s", list.Status, list.Body)
	}
	var lv credentials.ListView
	if err := json.Unmarshal(list.Body, &lv); err != nil {
		t.Fatal(err)
	}
	if len(lv.Results) != 2 || lv.Results[0].ID != id || lv.Results[0].Status != "ok" {
		t.Fatalf("list = %s", list.Body)
	}
	for _, body := range [][]byte{list.Body, r.Body} {
		if bytes.Contains(body, []byte(pw)) || bytes.Contains(body, []byte("password")) {
			t.Fatalf("response reveals the password or its sealed form: %s", body)
		}
	}
	var rawList struct {
		Results []map[string]any `json:"results"`
	}
	_ = json.Unmarshal(list.Body, &rawList)
	for _, k := range []string{"last_used_at", "last_login_at", "last_login_error", "screenshot_url"} {
		if v, ok := rawList.Results[0][k]; !ok || v != nil {
			t.Errorf("fresh account: %s = %v (present %v), want null", k, v, ok)
		}
	}

	if r := e.do(http.MethodGet, credentials.PathTeams+"/"+id, keyAcme, "", ""); r.Status != http.StatusOK || r.json(t)["id"] != id {
		t.Fatalf("GET one = %d %s", r.Status, r.Body)
	}
	if r := e.do(http.MethodDelete, credentials.PathTeams+"/"+id, keyAcme, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", r.Status, r.Body)
	}
	if r := e.do(http.MethodGet, credentials.PathTeams+"/"+id, keyAcme, "", ""); r.Status != http.StatusNotFound || r.json(t)["error"] != credentials.MsgNotFound {
		t.Fatalf("GET after DELETE = %d %s", r.Status, r.Body)
	}
	if r := e.do(http.MethodDelete, credentials.PathTeams+"/"+id, keyAcme, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("second DELETE = %d %s", r.Status, r.Body)
	}
	// The purged record leaves no sealed password behind.
	hist, err := e.topo.TeamsAccounts.History(context.Background(), teamsaccount.Key("acme", id))
	if err == nil {
		for _, h := range hist {
			if len(h.Value()) > 0 {
				t.Fatalf("deleted account still has a stored value (revision %d)", h.Revision())
			}
		}
	}
	if strings.Contains(e.logs.String(), pw) {
		t.Fatal("password in logs")
	}
}

func TestStoredValueIsSealedNotPlain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	const pw = "plain-text-never-stored-42"
	r := e.put(keyAcme, "bot@contoso.com", pw)
	id := r.json(t)["id"].(string)

	entry, err := e.topo.TeamsAccounts.Get(context.Background(), teamsaccount.Key("acme", id))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(entry.Value(), []byte(pw)) {
		t.Fatalf("stored value holds the password: %s", entry.Value())
	}
	var rec teamsaccount.Record
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if kid, _ := sealbox.KeyID(rec.SealedPassword); kid != "k1" {
		t.Fatalf("sealed under %q, want k1", kid)
	}
	got, err := e.ring.Open(rec.SealedPassword, teamsaccount.PasswordContext("acme", id))
	if err != nil || string(got) != pw {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Bound to its owner: the same blob does not open as another project's.
	if _, err := e.ring.Open(rec.SealedPassword, teamsaccount.PasswordContext("other", id)); err == nil {
		t.Fatal("sealed password opens for another project")
	}
}

func TestPutValidationNamesTheField(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	huge := strings.Repeat("x", 10_000)
	cases := []struct {
		name, body, contentType string
		status                  int
		want                    map[string]string // field -> message
	}{
		{"not an email", `{"email":"not-an-email","password":"pw"}`, "application/json", 400, map[string]string{"email": "Enter a valid email address."}},
		{"display name", `{"email":"Bot <bot@contoso.com>","password":"pw"}`, "application/json", 400, map[string]string{"email": "Enter a valid email address."}},
		{"no domain dot", `{"email":"bot@localhost","password":"pw"}`, "application/json", 400, map[string]string{"email": "Enter a valid email address."}},
		{"blank email", `{"email":"  ","password":"pw"}`, "application/json", 400, map[string]string{"email": "This field may not be blank."}},
		{"missing both", `{}`, "application/json", 400, map[string]string{"email": "This field is required.", "password": "This field is required."}},
		{"empty body", ``, "application/json", 400, map[string]string{"email": "This field is required.", "password": "This field is required."}},
		{"null password", `{"email":"bot@contoso.com","password":null}`, "application/json", 400, map[string]string{"password": "This field may not be null."}},
		{"number password", `{"email":"bot@contoso.com","password":12345}`, "application/json", 400, map[string]string{"password": "Not a valid string."}},
		{"empty password", `{"email":"bot@contoso.com","password":""}`, "application/json", 400, map[string]string{"password": "This field may not be blank."}},
		{"huge password", `{"email":"bot@contoso.com","password":"` + huge + `"}`, "application/json", 400, map[string]string{"password": "Ensure this field has no more than 256 characters."}},
		{"huge email", `{"email":"` + strings.Repeat("a", 250) + `@contoso.com","password":"pw"}`, "application/json", 400, map[string]string{"email": "Ensure this field has no more than 254 characters."}},
		{"unknown field", `{"email":"bot@contoso.com","password":"pw","mfa":"123"}`, "application/json", 400, map[string]string{"non_field_errors": "Unexpected field(s): mfa. Allowed fields are: email, password"}},
		{"array body", `["bot@contoso.com"]`, "application/json", 400, map[string]string{"non_field_errors": "Invalid data. Expected a dictionary, but got list."}},
	}
	for _, c := range cases {
		r := e.do(http.MethodPut, credentials.PathTeams, keyAcme, c.contentType, c.body)
		if r.Status != c.status {
			t.Errorf("%s: status %d %s, want %d", c.name, r.Status, r.Body, c.status)
			continue
		}
		got := r.json(t)
		if len(got) != len(c.want) {
			t.Errorf("%s: body %s, want exactly the fields %v", c.name, r.Body, c.want)
		}
		for field, msg := range c.want {
			list, _ := got[field].([]any)
			if len(list) != 1 || list[0] != msg {
				t.Errorf("%s: %s = %v, want [%q]", c.name, field, got[field], msg)
			}
		}
		if bytes.Contains(r.Body, []byte(huge)) {
			t.Errorf("%s: the password is echoed", c.name)
		}
	}

	// Framework errors: malformed JSON (never quoting the body), media type, size.
	r := e.do(http.MethodPut, credentials.PathTeams, keyAcme, "application/json", `{"email":"a@b.co","password":"hunter2-secret`)
	if d, _ := r.json(t)["detail"].(string); r.Status != 400 || !strings.HasPrefix(d, "JSON parse error - ") || strings.Contains(d, "hunter2") {
		t.Errorf("malformed JSON: %d %s", r.Status, r.Body)
	}
	r = e.do(http.MethodPut, credentials.PathTeams, keyAcme, "text/plain", `{}`)
	if r.Status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %s", r.Status, r.Body)
	}
	r = e.do(http.MethodPut, credentials.PathTeams, keyAcme, "application/json", `{"email":"a@b.co","password":"`+strings.Repeat("y", credentials.MaxBodyBytes)+`"}`)
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %s", r.Status, r.Body)
	}
	r = e.do(http.MethodPost, credentials.PathTeams, keyAcme, "application/json", `{}`)
	if r.Status != http.StatusMethodNotAllowed || r.json(t)["detail"] != `Method "POST" not allowed.` {
		t.Errorf("POST: %d %s", r.Status, r.Body)
	}
	r = e.do(http.MethodGet, "/api/v1/credentials/zoom", keyAcme, "", "")
	if r.Status != http.StatusNotFound || r.json(t)["error"] != "Not found" {
		t.Errorf("unknown path: %d %s", r.Status, r.Body)
	}
	r = e.do(http.MethodGet, credentials.PathTeams, "wrong-key-0123456789", "", "")
	if r.Status != http.StatusUnauthorized {
		t.Errorf("bad key: %d %s", r.Status, r.Body)
	}
	list := e.do(http.MethodGet, credentials.PathTeams, keyAcme, "", "")
	if string(bytes.TrimSpace(list.Body)) != `{"results":[]}` {
		t.Errorf("invalid PUTs stored something: %s", list.Body)
	}
}

func TestOtherProjectsAccountIs404(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	id := e.put(keyAcme, "bot@contoso.com", "pw-acme-1").json(t)["id"].(string)

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, credentials.PathTeams + "/" + id},
		{http.MethodDelete, credentials.PathTeams + "/" + id},
		{http.MethodGet, credentials.PathTeams + "/" + id + "/screenshot"},
	} {
		r := e.do(c.method, c.path, keyOther, "", "")
		if r.Status != http.StatusNotFound || r.json(t)["error"] != credentials.MsgNotFound {
			t.Errorf("%s %s as other project = %d %s, want 404 %q", c.method, c.path, r.Status, r.Body, credentials.MsgNotFound)
		}
	}
	if r := e.do(http.MethodGet, credentials.PathTeams, keyOther, "", ""); string(bytes.TrimSpace(r.Body)) != `{"results":[]}` {
		t.Errorf("other project's list = %s", r.Body)
	}
	// The same email in another project is another account, sealed for it.
	r := e.put(keyOther, "bot@contoso.com", "pw-other-1")
	if r.Status != http.StatusCreated {
		t.Fatalf("PUT in other project = %d %s", r.Status, r.Body)
	}
	if r := e.do(http.MethodGet, credentials.PathTeams+"/"+id, keyAcme, "", ""); r.Status != http.StatusOK {
		t.Fatalf("acme's account after the other project's requests = %d %s", r.Status, r.Body)
	}
	for _, bad := range []string{"nope", "acct_XYZ", "acct_0123456789abcdef0", "..", "acct_0123456789ABCDEF"} {
		if r := e.do(http.MethodGet, credentials.PathTeams+"/"+bad, keyAcme, "", ""); r.Status != http.StatusNotFound {
			t.Errorf("GET id %q = %d %s", bad, r.Status, r.Body)
		}
	}
}

// workerWrite changes a record the way a worker does (status after a login).
func workerWrite(t *testing.T, kv jetstream.KeyValue, project, id string, change func(*teamsaccount.Record)) {
	t.Helper()
	ctx := context.Background()
	e, err := kv.Get(ctx, teamsaccount.Key(project, id))
	if err != nil {
		t.Fatal(err)
	}
	var rec teamsaccount.Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	change(&rec)
	b, _ := json.Marshal(rec)
	if _, err := kv.Update(ctx, teamsaccount.Key(project, id), b, e.Revision()); err != nil {
		t.Fatal(err)
	}
}

func TestPutAgainMakesAnInvalidAccountUsable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	first := e.put(keyAcme, "bot@contoso.com", "wrong-pw")
	id := first.json(t)["id"].(string)
	rec0, _ := e.store.Get(context.Background(), "acme", id)
	now := time.Now().UTC()
	workerWrite(t, e.topo.TeamsAccounts, "acme", id, func(r *teamsaccount.Record) {
		r.Status = teamsaccount.StatusInvalid
		r.LastFailureCode = "teams_login_invalid_credentials"
		r.LastFailureAt = now
		r.LastUsedAt = now
	})
	got := e.do(http.MethodGet, credentials.PathTeams+"/"+id, keyAcme, "", "").json(t)
	if got["status"] != "invalid" || got["last_login_error"] != "teams_login_invalid_credentials" || got["last_used_at"] == nil {
		t.Fatalf("after a failed login: %v", got)
	}

	r := e.put(keyAcme, "bot@contoso.com", "right-pw")
	if r.Status != http.StatusOK || r.json(t)["status"] != "ok" {
		t.Fatalf("PUT new password = %d %s", r.Status, r.Body)
	}
	rec1, _ := e.store.Get(context.Background(), "acme", id)
	if rec1.CredentialsVersion == rec0.CredentialsVersion || !rec1.CreatedAt.Equal(rec0.CreatedAt) || rec1.LastUsedAt.IsZero() {
		t.Fatalf("PUT did not change only the credentials: before %+v after %+v", rec0, rec1)
	}
}

func TestProjectAccountLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	e.put(keyAcme, "a@contoso.com", "pw")
	e.put(keyAcme, "b@contoso.com", "pw")
	if r := e.put(keyAcme, "c@contoso.com", "pw"); r.Status != http.StatusBadRequest || !strings.Contains(r.json(t)["error"].(string), "maximum of 2") {
		t.Fatalf("third account = %d %s", r.Status, r.Body)
	}
	if r := e.put(keyAcme, "a@contoso.com", "pw2"); r.Status != http.StatusOK {
		t.Fatalf("updating an existing account at the limit = %d %s", r.Status, r.Body)
	}
	if r := e.put(keyOther, "c@contoso.com", "pw"); r.Status != http.StatusCreated {
		t.Fatalf("another project is not limited by acme's accounts: %d %s", r.Status, r.Body)
	}
}

func TestScreenshotDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	id := e.put(keyAcme, "bot@contoso.com", "pw").json(t)["id"].(string)
	path := credentials.PathTeams + "/" + id + "/screenshot"

	if r := e.do(http.MethodGet, path, keyAcme, "", ""); r.Status != http.StatusNotFound || r.json(t)["error"] != credentials.MsgScreenshotNotFound {
		t.Fatalf("no screenshot yet = %d %s", r.Status, r.Body)
	}
	img := []byte("\xff\xd8\xff\xe0 fake jpeg bytes")
	_, err := e.topo.Screenshots.Put(context.Background(), jetstream.ObjectMeta{
		Name:     teamsaccount.ScreenshotName("acme", id),
		Metadata: map[string]string{"content_type": "image/jpeg"},
	}, bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	workerWrite(t, e.topo.TeamsAccounts, "acme", id, func(r *teamsaccount.Record) { r.Screenshot = teamsaccount.ScreenshotName("acme", id) })

	got := e.do(http.MethodGet, credentials.PathTeams+"/"+id, keyAcme, "", "").json(t)
	if got["screenshot_url"] != path {
		t.Fatalf("screenshot_url = %v, want %s", got["screenshot_url"], path)
	}
	r := e.do(http.MethodGet, path, keyAcme, "", "")
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(r.Body, img) {
		t.Fatalf("screenshot = %d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	// Deleting the account deletes its screenshot.
	e.do(http.MethodDelete, credentials.PathTeams+"/"+id, keyAcme, "", "")
	if _, err := e.topo.Screenshots.GetInfo(context.Background(), teamsaccount.ScreenshotName("acme", id)); err == nil {
		t.Fatal("screenshot survives its account")
	}
}

func TestResealMovesEveryAccountToTheCurrentKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	pws := map[string]string{"a@contoso.com": "pw-a", "b@contoso.com": "pw-b"}
	for email, pw := range pws {
		e.put(keyAcme, email, pw)
	}
	e.put(keyOther, "c@contoso.com", "pw-c")
	pws["c@contoso.com"] = "pw-c"

	// Rotate: a new current key, the old one kept to open old blobs.
	_, specs := newRing(t, "k2")
	rotated, err := sealbox.ParseKeys(secret.String(specs[0].Reveal() + "," + e.spec.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	store := credentials.NewStore(e.topo.TeamsAccounts, e.topo.Screenshots, rotated, 10)
	res, err := store.Reseal(context.Background())
	if err != nil || res.Checked != 3 || res.Resealed != 3 {
		t.Fatalf("Reseal = %+v, %v", res, err)
	}
	again, err := store.Reseal(context.Background())
	if err != nil || again.Resealed != 0 {
		t.Fatalf("second Reseal = %+v, %v", again, err)
	}
	// The old key can now be dropped: every password opens with k2 alone.
	k2only, _ := sealbox.ParseKeys(specs[0])
	for _, project := range []string{"acme", "other"} {
		recs, err := store.List(context.Background(), project)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			pw, err := k2only.Open(rec.SealedPassword, teamsaccount.PasswordContext(project, rec.ID))
			if err != nil || string(pw) != pws[rec.Email] {
				t.Fatalf("%s after reseal: %q, %v", rec.Email, pw, err)
			}
		}
	}
}

func TestStatusGaugeCountsAccountsByStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10)
	reg := prometheus.NewRegistry()
	g := credentials.NewStatusGauge(e.topo.TeamsAccounts, logging.Discard(), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	a := e.put(keyAcme, "a@contoso.com", "pw").json(t)["id"].(string)
	e.put(keyAcme, "b@contoso.com", "pw")
	e.put(keyOther, "c@contoso.com", "pw")
	workerWrite(t, e.topo.TeamsAccounts, "acme", a, func(r *teamsaccount.Record) { r.Status = teamsaccount.StatusLocked })

	waitFor(t, 5*time.Second, func() bool {
		return gaugeValue(reg, "ok") == 2 && gaugeValue(reg, "locked") == 1 && gaugeValue(reg, "invalid") == 0 && gaugeValue(reg, "mfa_required") == 0
	})
	e.do(http.MethodDelete, credentials.PathTeams+"/"+a, keyAcme, "", "")
	waitFor(t, 5*time.Second, func() bool {
		return gaugeValue(reg, "locked") == 0 && gaugeValue(reg, "ok") == 2
	})
}

func gaugeValue(reg *prometheus.Registry, status string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" && l.GetValue() == status {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestStoreErrorsAnswer503WithoutLeaking(t *testing.T) {
	t.Parallel()
	js := natstest.New(t)
	topo := js.Topology()
	ring, _ := newRing(t, "k1")
	logs := &logging.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{ReplaceAttr: logging.Redact}))
	nc := js.Conn(nats.MaxReconnects(0))
	jsc, _ := jetstream.New(nc)
	kv, err := jsc.KeyValue(context.Background(), topology.BucketTeamsAccounts)
	if err != nil {
		t.Fatal(err)
	}
	store := credentials.NewStore(kv, topo.Screenshots, ring, 10)
	keys, _ := apiauth.ParseKeys("acme:" + keyAcme)
	srv := httptest.NewServer(keys.Middleware(credentials.NewHandler(store, log)))
	t.Cleanup(srv.Close)
	js.Shutdown()

	req, _ := http.NewRequest(http.MethodPut, srv.URL+credentials.PathTeams, strings.NewReader(`{"email":"bot@contoso.com","password":"down-pw-secret"}`))
	req.Header.Set("Authorization", "Token "+keyAcme)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), credentials.MsgUnavailable) {
		t.Fatalf("PUT with JetStream down = %d %s", resp.StatusCode, body)
	}
	if strings.Contains(logs.String(), "down-pw-secret") || !strings.Contains(logs.String(), "teams credentials store failed") {
		t.Fatalf("logs = %s", logs.String())
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (credentials.Config{MaxAccounts: 100}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (credentials.Config{MaxAccounts: 0}).Validate(); err == nil || !strings.Contains(err.Error(), "USHER_TEAMS_MAX_ACCOUNTS_PER_PROJECT") {
		t.Fatalf("Validate = %v", err)
	}
}
