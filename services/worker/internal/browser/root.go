package browser

import "os"

// isRoot: Chromium refuses to run its sandbox as root, so NoSandbox is set
// only then (the worker image runs as a non-root user).
func isRoot() bool { return os.Geteuid() == 0 }
