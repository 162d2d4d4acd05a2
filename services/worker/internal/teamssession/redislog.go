package teamssession

import (
	"context"
	"fmt"
	"log/slog"
)

// RedisLogger adapts slog to go-redis's package-level logger, which
// otherwise prints connection errors to stderr. go-redis keeps one logger
// per process, so main installs it: redis.SetLogger(teamssession.RedisLogger(log)).
func RedisLogger(log *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return redisLogger{log: log}
}

type redisLogger struct{ log *slog.Logger }

// Printf logs go-redis's message at debug level: the cache already logs
// and counts every failed command it sees.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
