package credentials

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/sealbox"
	"github.com/usherhq/usher/shared/secret"
	"github.com/usherhq/usher/shared/teamsaccount"
)

// Errors of the store.
var (
	// ErrNotFound: no such account in the project (or it belongs to another project).
	ErrNotFound = errors.New("teams account not found")
	// ErrTooManyAccounts: the project already holds its maximum number of accounts.
	ErrTooManyAccounts = errors.New("too many teams accounts")
	// ErrConflict: the record kept changing under a write (retry the request).
	ErrConflict = errors.New("teams account changed concurrently")
)

// maxCASAttempts bounds read-modify-write retries against a record that
// workers update at the same time.
const maxCASAttempts = 8

// Store keeps the projects' Teams accounts, passwords sealed, in the
// TEAMS_ACCOUNTS bucket, and reads their failed-login screenshots.
type Store struct {
	kv          jetstream.KeyValue
	shots       jetstream.ObjectStore
	ring        *sealbox.Ring
	maxAccounts int
	now         func() time.Time
}

// NewStore returns a store over the TEAMS_ACCOUNTS bucket and the
// SCREENSHOTS object store. maxAccounts bounds accounts per project.
func NewStore(kv jetstream.KeyValue, shots jetstream.ObjectStore, ring *sealbox.Ring, maxAccounts int) *Store {
	return &Store{kv: kv, shots: shots, ring: ring, maxAccounts: maxAccounts, now: time.Now}
}

// Put creates the account of email in project, or replaces its password.
// Either way the account's status goes back to ok: new credentials deserve
// a new try. It reports whether the account was created.
func (s *Store) Put(ctx context.Context, project, email string, password secret.String) (teamsaccount.Record, bool, error) {
	id := teamsaccount.AccountID(email)
	key := teamsaccount.Key(project, id)
	sealed, err := s.ring.Seal([]byte(password.Reveal()), teamsaccount.PasswordContext(project, id))
	if err != nil {
		return teamsaccount.Record{}, false, fmt.Errorf("seal password of account %s: %w", id, err)
	}
	for range maxCASAttempts {
		now := s.now().UTC()
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			n, err := s.count(ctx, project)
			if err != nil {
				return teamsaccount.Record{}, false, err
			}
			if n >= s.maxAccounts {
				return teamsaccount.Record{}, false, fmt.Errorf("%w: project %s holds %d", ErrTooManyAccounts, project, n)
			}
			rec := teamsaccount.Record{
				ID: id, Project: project, Email: email, SealedPassword: sealed,
				CredentialsVersion: newCredentialsVersion(), Status: teamsaccount.StatusOK,
				StatusChangedAt: now, CreatedAt: now, UpdatedAt: now,
			}
			data, err := json.Marshal(rec)
			if err != nil {
				return teamsaccount.Record{}, false, fmt.Errorf("encode account %s: %w", id, err)
			}
			if _, err := s.kv.Create(ctx, key, data); errors.Is(err, jetstream.ErrKeyExists) {
				continue
			} else if err != nil {
				return teamsaccount.Record{}, false, fmt.Errorf("create account %s: %w", id, err)
			}
			return rec, true, nil
		case err != nil:
			return teamsaccount.Record{}, false, fmt.Errorf("read account %s: %w", id, err)
		}
		rec, err := teamsaccount.Decode(e.Value())
		if err != nil {
			return teamsaccount.Record{}, false, fmt.Errorf("account %s: %w", id, err)
		}
		rec.Email = email
		rec.SealedPassword = sealed
		rec.CredentialsVersion = newCredentialsVersion()
		if rec.Status != teamsaccount.StatusOK {
			rec.Status, rec.StatusChangedAt = teamsaccount.StatusOK, now
		}
		rec.UpdatedAt = now
		data, err := json.Marshal(rec)
		if err != nil {
			return teamsaccount.Record{}, false, fmt.Errorf("encode account %s: %w", id, err)
		}
		if _, err := s.kv.Update(ctx, key, data, e.Revision()); errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		} else if err != nil {
			return teamsaccount.Record{}, false, fmt.Errorf("update account %s: %w", id, err)
		}
		return rec, false, nil
	}
	return teamsaccount.Record{}, false, fmt.Errorf("put account %s: %w", id, ErrConflict)
}

// Get returns one account of project.
func (s *Store) Get(ctx context.Context, project, id string) (teamsaccount.Record, error) {
	if !teamsaccount.ValidAccountID(id) {
		return teamsaccount.Record{}, ErrNotFound
	}
	e, err := s.kv.Get(ctx, teamsaccount.Key(project, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return teamsaccount.Record{}, ErrNotFound
	}
	if err != nil {
		return teamsaccount.Record{}, fmt.Errorf("read account %s: %w", id, err)
	}
	rec, err := teamsaccount.Decode(e.Value())
	if err != nil {
		return teamsaccount.Record{}, fmt.Errorf("account %s: %w", id, err)
	}
	return rec, nil
}

// List returns project's accounts, oldest first.
func (s *Store) List(ctx context.Context, project string) ([]teamsaccount.Record, error) {
	entries, err := s.scan(ctx, project+".*")
	if err != nil {
		return nil, err
	}
	out := make([]teamsaccount.Record, 0, len(entries))
	for _, e := range entries {
		rec, err := teamsaccount.Decode(e.Value())
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", e.Key(), err)
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Delete removes an account and its screenshot. The record is purged, so
// the sealed password does not stay in the bucket's history.
func (s *Store) Delete(ctx context.Context, project, id string) error {
	rec, err := s.Get(ctx, project, id)
	if err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, teamsaccount.Key(project, rec.ID)); err != nil {
		return fmt.Errorf("delete account %s: %w", id, err)
	}
	if err := s.shots.Delete(ctx, teamsaccount.ScreenshotName(project, rec.ID)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete screenshot of account %s: %w", id, err)
	}
	return nil
}

// Screenshot is a stored failed-login screenshot.
type Screenshot struct {
	ContentType string
	TakenAt     time.Time
	Data        []byte
}

// maxScreenshotBytes guards the API against an oversized object.
const maxScreenshotBytes = 4 << 20

// Screenshot returns the last failed-login screenshot of an account, or
// ErrNotFound when there is none (never taken, or aged out).
func (s *Store) Screenshot(ctx context.Context, project, id string) (Screenshot, error) {
	if _, err := s.Get(ctx, project, id); err != nil {
		return Screenshot{}, err
	}
	obj, err := s.shots.Get(ctx, teamsaccount.ScreenshotName(project, id))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Screenshot{}, ErrNotFound
	}
	if err != nil {
		return Screenshot{}, fmt.Errorf("read screenshot of account %s: %w", id, err)
	}
	defer obj.Close()
	info, err := obj.Info()
	if err != nil {
		return Screenshot{}, fmt.Errorf("read screenshot of account %s: %w", id, err)
	}
	data, err := io.ReadAll(io.LimitReader(obj, maxScreenshotBytes+1))
	if err != nil {
		return Screenshot{}, fmt.Errorf("read screenshot of account %s: %w", id, err)
	}
	if len(data) > maxScreenshotBytes {
		return Screenshot{}, fmt.Errorf("screenshot of account %s exceeds %d bytes", id, maxScreenshotBytes)
	}
	ct := info.Metadata["content_type"]
	if ct == "" {
		ct = "application/octet-stream"
	}
	return Screenshot{ContentType: ct, TakenAt: info.ModTime, Data: data}, nil
}

// ResealResult counts what Reseal did.
type ResealResult struct {
	Checked  int
	Resealed int
}

// Reseal re-seals every stored password under the ring's current key. It is
// safe to run while the fleet runs: each record is rewritten with a
// compare-and-set, and workers open both the old and the new blob as long as
// the old key stays in USHER_SECRET_KEYS.
func (s *Store) Reseal(ctx context.Context) (ResealResult, error) {
	var res ResealResult
	entries, err := s.scan(ctx, ">")
	if err != nil {
		return res, err
	}
	for _, e := range entries {
		changed, err := s.resealKey(ctx, e.Key())
		if err != nil {
			return res, err
		}
		res.Checked++
		if changed {
			res.Resealed++
		}
	}
	return res, nil
}

func (s *Store) resealKey(ctx context.Context, key string) (bool, error) {
	for range maxCASAttempts {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read account %s: %w", key, err)
		}
		rec, err := teamsaccount.Decode(e.Value())
		if err != nil {
			return false, fmt.Errorf("account %s: %w", key, err)
		}
		blob, changed, err := s.ring.Reseal(rec.SealedPassword, teamsaccount.PasswordContext(rec.Project, rec.ID))
		if err != nil {
			return false, fmt.Errorf("reseal account %s: %w", key, err)
		}
		if !changed {
			return false, nil
		}
		rec.SealedPassword = blob
		data, err := json.Marshal(rec)
		if err != nil {
			return false, fmt.Errorf("encode account %s: %w", key, err)
		}
		if _, err := s.kv.Update(ctx, key, data, e.Revision()); errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		} else if err != nil {
			return false, fmt.Errorf("update account %s: %w", key, err)
		}
		return true, nil
	}
	return false, fmt.Errorf("reseal account %s: %w", key, ErrConflict)
}

func (s *Store) count(ctx context.Context, project string) (int, error) {
	entries, err := s.scan(ctx, project+".*")
	return len(entries), err
}

// scan returns the current value of every live key matching filter, read
// with one watcher (the bucket keeps one revision per key).
func (s *Store) scan(ctx context.Context, filter string) ([]jetstream.KeyValueEntry, error) {
	w, err := s.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer func() { _ = w.Stop() }()
	seen := map[string]int{}
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // every current value has been delivered
				return out, nil
			}
			if i, dup := seen[e.Key()]; dup {
				out[i] = e
				continue
			}
			seen[e.Key()] = len(out)
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("list accounts: %w", ctx.Err())
		}
	}
}

// newCredentialsVersion returns a fresh Record.CredentialsVersion.
func newCredentialsVersion() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}
