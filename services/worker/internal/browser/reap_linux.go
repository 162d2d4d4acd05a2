//go:build linux

package browser

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// adoptOrphans makes this process the reaper of its descendants' orphans.
// Chromium daemonises its crash handlers, and when the browser process dies
// (crash, OOM kill) its zygotes and renderers are orphaned; without this they
// are re-parented to PID 1 — in a container often the worker itself or an
// init that never reaps — and stay as zombies. With it they come back to
// this process and reap collects them.
func adoptOrphans() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// markerEnv is set in the environment of each browser launch so that all of
// its processes — including the crash handlers, which leave the process
// group — can be found again.
const markerEnv = "USHER_BROWSER_INSTANCE"

// marked lists the live processes whose environment carries marker.
func marked(marker string) []int {
	want := []byte(markerEnv + "=" + marker + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		env, err := os.ReadFile(d + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// killMarked kills every process of a browser instance — its process group
// and its daemonised helpers (those still carrying the marker; known ones
// that already exited only need reaping) — and reaps the ones that were
// re-parented to this process. The group leader (the browser itself) is
// reaped by os/exec, which closes gone. It never signals or waits on a
// process it cannot tie to the instance, so os/exec's other children and
// reused pids are left alone. Bounded: it gives up after reapTimeout.
func killMarked(pgid int, marker string, known []int, gone <-chan struct{}) {
	live := marked(marker)
	killGroup(pgid)
	for _, pid := range live {
		if pid != pgid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	select {
	case <-gone:
	case <-time.After(reapTimeout):
		return
	}
	ours := func(pid int, st Stat) bool {
		return st.PGID == pgid || slices.Contains(live, pid) ||
			(slices.Contains(known, pid) && strings.HasPrefix(st.Comm, "chrome_crashpad"))
	}
	self := os.Getpid()
	deadline := time.Now().Add(reapTimeout)
	for {
		// Rescan each round: a process forked while the browser was dying
		// joins the group after the first look.
		group, _ := GroupPIDs(pgid)
		pending := 0
		for _, pid := range slices.Concat(group, live, known) {
			st, err := ReadStat(pid)
			switch {
			case err != nil || !ours(pid, st):
				// gone, or not (any more) a process of this instance
			case st.State != 'Z':
				_ = syscall.Kill(pid, syscall.SIGKILL)
				pending++
			case st.PPID == self:
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			case st.PPID != 1:
				pending++ // a zombie about to be re-parented to us
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reapTimeout bounds the wait for a killed browser's processes.
const reapTimeout = 5 * time.Second

// helpers lists the processes of an instance outside its process group
// (Chromium's crash handlers start their own sessions).
func helpers(pgid int, marker string) []int {
	var out []int
	for _, pid := range marked(marker) {
		if st, err := ReadStat(pid); err == nil && st.PGID != pgid {
			out = append(out, pid)
		}
	}
	return out
}
