package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/services/ingest/internal/credentials"
	"github.com/usherhq/usher/shared/natstest"
	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/teamsaccount"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestResealCommandRotatesEveryAccount(t *testing.T) {
	js := natstest.New(t)
	topo := js.Topology()
	oldSpec, _ := sealbox.NewKeySpec("old")
	newSpec, _ := sealbox.NewKeySpec("new")
	oldRing, _ := sealbox.ParseKeys(oldSpec)
	ctx := context.Background()
	seed := credentials.NewStore(topo.TeamsAccounts, topo.Screenshots, oldRing, 10)
	for _, email := range []string{"a@contoso.com", "b@contoso.com"} {
		if _, _, err := seed.Put(ctx, "acme", email, "pw-"+secret.String(email)); err != nil {
			t.Fatal(err)
		}
	}

	var out bytes.Buffer
	cfg := Config{NATSURL: js.URL, Timeout: time.Minute, SessionKeyPrefix: "usher:",
		Seal: sealbox.Config{Keys: secret.String(newSpec.Reveal() + "," + oldSpec.Reveal())}}
	if err := run(ctx, cfg, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `checked 2 Teams accounts, resealed 2 under key "new"`) || !strings.Contains(out.String(), "usher:teams:session:*") {
		t.Fatalf("output = %s", out.String())
	}
	_, oldKey, _ := strings.Cut(oldSpec.Reveal(), ":")
	_, newKey, _ := strings.Cut(newSpec.Reveal(), ":")
	if strings.Contains(out.String(), oldKey) || strings.Contains(out.String(), newKey) {
		t.Fatal("the command printed key material")
	}
	newOnly, _ := sealbox.ParseKeys(newSpec)
	recs, err := credentials.NewStore(topo.TeamsAccounts, topo.Screenshots, newOnly, 10).List(ctx, "acme")
	if err != nil || len(recs) != 2 {
		t.Fatalf("List = %d, %v", len(recs), err)
	}
	for _, rec := range recs {
		if pw, err := newOnly.Open(rec.SealedPassword, teamsaccount.PasswordContext("acme", rec.ID)); err != nil || string(pw) != "pw-"+rec.Email {
			t.Fatalf("%s: %q, %v", rec.Email, pw, err)
		}
	}

	// A ring that lacks the key some account is sealed with fails loudly, naming the key id only.
	strangerSpec, _ := sealbox.NewKeySpec("stranger")
	cfg.Seal.Keys = strangerSpec
	err = run(ctx, cfg, &out)
	if err == nil || !strings.Contains(err.Error(), `unknown key id "new"`) {
		t.Fatalf("run with a ring missing the key = %v", err)
	}
	cfg.Seal.Keys = ""
	if err := run(ctx, cfg, &out); err == nil || !strings.Contains(err.Error(), "USHER_SECRET_KEYS") {
		t.Fatalf("run without keys = %v", err)
	}
}
