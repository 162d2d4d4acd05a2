package logging

import (
	"bytes"
	"sync"
)

// Buffer is a concurrency-safe log sink: handlers on many goroutines write to
// it while a test reads everything logged so far, for example to assert that
// no password, ZAK or cookie reached a log line. The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
