// Package natstest gives each test its own embedded JetStream server in
// t.TempDir(), with the Usher topology created, and can restart it on the
// same port and store to test recovery.
package natstest

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usherhq/usher/shared/natsembed"
	"github.com/usherhq/usher/shared/topology"
)

// ObjectPutLeak is the goroutine nats.go (v1.55.0, the newest) can leave
// behind after an ObjectStore.Put, for goleak to ignore by its top function
// (goleak.IgnoreTopFunction). Put publishes its chunks through a JetStream
// context of its own, whose first async publish starts a goroutine that reads
// the context's connection-status channel; Put's deferred cleanup sets that
// channel to nil, and when the cleanup wins the race the goroutine waits on a
// nil channel for ever. Test packages that store objects (the failed-login
// screenshots) ignore it rather than fail on a leak that is not Usher's.
const ObjectPutLeak = "github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"

// Server is one test's JetStream server.
type Server struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
	URL  string
	Topo topology.Config
}

// New starts a server with file storage in t.TempDir() and ensures the
// topology with test-friendly timings (short lease TTL and ack wait). It is
// shut down by t.Cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	cfg := topology.Defaults()
	cfg.LeaseTTL = 3 * time.Second
	cfg.JobAckWait = 5 * time.Second
	return NewWithTopology(t, cfg)
}

// NewWithTopology is New with a caller-chosen topology configuration.
func NewWithTopology(t testing.TB, topo topology.Config) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), port: -1, Topo: topo}
	s.start()
	t.Cleanup(s.Shutdown)
	nc := s.Conn()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := topology.Ensure(ctx, js, topo); err != nil {
		t.Fatalf("natstest: ensure topology: %v", err)
	}
	return s
}

func (s *Server) start() {
	s.t.Helper()
	srv, err := natsembed.Start(natsembed.Config{Port: s.port, StoreDir: s.dir, ServerName: "usher-test"})
	if err != nil {
		s.t.Fatalf("natstest: start: %v", err)
	}
	s.srv = srv
	s.URL = srv.ClientURL()
	if s.port == -1 {
		u, err := url.Parse(s.URL)
		if err != nil {
			s.t.Fatalf("natstest: client url %q: %v", s.URL, err)
		}
		s.port, _ = strconv.Atoi(u.Port())
	}
}

// Conn opens a client connection that reconnects forever (so it survives
// Restart) and is closed by t.Cleanup.
func (s *Server) Conn(opts ...nats.Option) *nats.Conn {
	s.t.Helper()
	base := []nats.Option{nats.Name("natstest"), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	nc, err := nats.Connect(s.URL, append(base, opts...)...)
	if err != nil {
		s.t.Fatalf("natstest: connect: %v", err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}

// JetStream opens a connection and returns its JetStream context.
func (s *Server) JetStream() jetstream.JetStream {
	s.t.Helper()
	js, err := jetstream.New(s.Conn())
	if err != nil {
		s.t.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}

// Topology returns handles on the topology, through a new connection.
func (s *Server) Topology() *topology.Topology {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topo, err := topology.Ensure(ctx, s.JetStream(), s.Topo)
	if err != nil {
		s.t.Fatalf("natstest: topology: %v", err)
	}
	return topo
}

// Shutdown stops the server (idempotent).
func (s *Server) Shutdown() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart stops the server and starts it again on the same port and store,
// as an operator restarting the JetStream server would.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// Stopped reports whether the server is down.
func (s *Server) Stopped() bool { return s.srv == nil }
