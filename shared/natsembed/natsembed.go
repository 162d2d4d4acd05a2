// Package natsembed runs a JetStream-enabled nats-server inside the process,
// for `make run` and for tests. The Debian nats-server is too old for
// message schedules; this one is the nats-server/v2 Go module.
package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config of an embedded server.
type Config struct {
	// Host to listen on. Default 127.0.0.1.
	Host string
	// Port for clients; -1 picks a free one. Default -1.
	Port int
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// ServerName names the server in logs and advisories. Default "usher-embedded".
	ServerName string
	// MonitorPort serves /varz, /jsz... when > 0. Default off.
	MonitorPort int
	// Logs enables the server's own log output on stderr. Default off.
	Logs bool
	// ReadyTimeout bounds start-up. Default 10 s.
	ReadyTimeout time.Duration
}

// ErrNotReady is returned when the server does not accept connections in time.
var ErrNotReady = errors.New("embedded nats-server not ready")

// Start starts the server and waits until it accepts connections. The caller
// owns it: call Shutdown and WaitForShutdown.
func Start(cfg Config) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "usher-embedded"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// The process owns its signals; without this the embedded server traps them.
		NoSigs:   true,
		NoLog:    !cfg.Logs,
		HTTPHost: cfg.Host,
		HTTPPort: cfg.MonitorPort,
		// Generous limits: Usher's messages are small but many.
		MaxPayload: 8 << 20,
	}
	if cfg.MonitorPort <= 0 {
		opts.HTTPPort = 0
		opts.HTTPHost = ""
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	if cfg.Logs {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("%w after %s", ErrNotReady, cfg.ReadyTimeout)
	}
	return s, nil
}
