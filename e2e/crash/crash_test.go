// Package crash kills the worker's Chromium under bots that are in their
// meetings. It runs a fleet of its own: no other test may share the browser
// it kills.
package crash

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usherhq/usher/e2e/fleet"
	"github.com/usherhq/usher/services/simulator/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestBrowserKilledInMeeting: kill -9 of the worker's Chromium with two bots
// in meetings → each bot goes back to joining (metadata reason
// browser_crashed), joins again in a restarted browser and is listed in its
// meeting again. The policy is one rejoin: a second kill fails both bots with
// browser_crashed. When the fleet closes, nothing of either browser is left:
// no process, no zombie.
func TestBrowserKilledInMeeting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := fleet.Start(ctx, t.TempDir(), fleet.Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	closeFleet := func() { closeOnce.Do(f.Close) }
	t.Cleanup(closeFleet)
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("E2E_DUMP_LOGS") != "" {
			t.Log(f.Logs.String())
		}
	})
	c := f.As(fleet.Project)

	type inMeeting struct {
		bot     fleet.Bot
		meeting sim.Meeting
		name    string
	}
	var bots []inMeeting
	for _, platform := range []string{sim.Zoom, sim.Teams} {
		m, err := f.Sim.CreateMeeting(sim.MeetingSpec{Platform: platform})
		if err != nil {
			t.Fatal(err)
		}
		name := "Survivor " + platform
		bot, err := c.CreateBot(ctx, map[string]any{"meeting_url": m.URL, "bot_name": name})
		if err != nil {
			t.Fatal(err)
		}
		bots = append(bots, inMeeting{bot, m, name})
	}
	for _, b := range bots {
		if _, err := c.WaitState(ctx, b.bot.ID, "joined", 60*time.Second); err != nil {
			t.Fatal(err)
		}
		waitInMeeting(t, ctx, f, b.meeting.ID, b.name)
	}

	var instances []browserInstance
	first := waitBrowser(t, ctx, 0)
	instances = append(instances, first)
	first.kill(t)

	for _, b := range bots {
		back, err := c.WaitBot(ctx, b.bot.ID, 60*time.Second, func(got fleet.Bot) bool {
			return got.State == "joined" && len(got.Events) == 4 || got.State == "failed" || got.State == "ended"
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"joining", "joined", "joining", "joined"}; !slices.Equal(back.States(), want) {
			t.Fatalf("bot %s after the kill went through %v, want %v", b.name, eventsOf(back), want)
		}
		if reason := back.Events[2].Metadata["reason"]; reason != "browser_crashed" {
			t.Fatalf("rejoin event metadata %v, want reason browser_crashed", back.Events[2].Metadata)
		}
		p := waitInMeeting(t, ctx, f, b.meeting.ID, b.name)
		if p.Identity != sim.IdentityAnonymous {
			t.Fatalf("rejoined as %q", p.Identity)
		}
	}

	second := waitBrowser(t, ctx, first.pid)
	instances = append(instances, second)
	second.kill(t)
	for _, b := range bots {
		failed, err := c.WaitBot(ctx, b.bot.ID, 60*time.Second, func(got fleet.Bot) bool { return got.State == "failed" || got.State == "ended" })
		if err != nil {
			t.Fatal(err)
		}
		if failed.State != "failed" || failed.Sub() != "browser_crashed" {
			t.Fatalf("bot %s after the second kill: %s/%s (states %v), want failed/browser_crashed", b.name, failed.State, failed.Sub(), failed.States())
		}
	}

	// The worker restarted its browser a second time; closing the fleet must
	// take that one down too, and leave nothing of any of them behind.
	instances = append(instances, waitBrowser(t, ctx, second.pid))
	closeFleet()
	for _, inst := range instances {
		if left := inst.processes(); len(left) > 0 {
			t.Errorf("browser %d left processes behind after the fleet closed: %v", inst.pid, left)
		}
	}
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombie children of the test process after the fleet closed: %v", z)
	}
}

// waitInMeeting waits until the simulator lists the newest participant named
// name in the meeting.
func waitInMeeting(t *testing.T, ctx context.Context, f *fleet.Fleet, meetingID, name string) sim.Participant {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, err := f.Sim.WaitParticipant(wctx, meetingID, name, sim.StateInMeeting)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// browserInstance is one run of the worker's Chromium: its process and the
// marker the worker puts in the environment of all its processes.
type browserInstance struct {
	pid    int
	marker string
	procs  []int // every process of the instance, seen before the kill
}

const markerEnv = "USHER_BROWSER_INSTANCE="

// waitBrowser waits for the worker's Chromium (a chromium child of this
// process) whose pid is not notPID, and returns it with its processes.
func waitBrowser(t *testing.T, ctx context.Context, notPID int) browserInstance {
	t.Helper()
	for {
		var found []int
		for _, pid := range pids() {
			st, err := readStat(pid)
			if err == nil && st.ppid == os.Getpid() && st.comm == "chromium" && st.state != 'Z' && pid != notPID {
				found = append(found, pid)
			}
		}
		if len(found) > 1 {
			t.Fatalf("several browsers are children of the test: %v", found)
		}
		if len(found) == 1 {
			marker := envValue(found[0], markerEnv)
			if marker == "" {
				t.Fatalf("browser %d has no %s in its environment", found[0], markerEnv)
			}
			inst := browserInstance{pid: found[0], marker: marker}
			for _, pid := range pids() {
				if envValue(pid, markerEnv) == marker {
					inst.procs = append(inst.procs, pid)
				}
			}
			return inst
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no browser besides %d appeared: %v", notPID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL to the browser process only, as a crash or the OOM
// killer would: its renderers and helpers are left for the worker to clean up.
func (b browserInstance) kill(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(b.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill browser %d: %v", b.pid, err)
	}
}

// processes lists what is left of the instance: live processes carrying its
// marker, and any of its known processes that is still around (a zombie has
// no readable environment).
func (b browserInstance) processes() []string {
	var out []string
	for _, pid := range pids() {
		if envValue(pid, markerEnv) == b.marker {
			out = append(out, describe(pid))
		}
	}
	for _, pid := range b.procs {
		st, err := readStat(pid)
		if err == nil && st.state == 'Z' {
			out = append(out, describe(pid))
		}
	}
	return out
}

// zombieChildren lists this process's children that exited unreaped.
func zombieChildren() []string {
	var out []string
	for _, pid := range pids() {
		if st, err := readStat(pid); err == nil && st.ppid == os.Getpid() && st.state == 'Z' {
			out = append(out, describe(pid))
		}
	}
	return out
}

func pids() []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	out := make([]int, 0, len(dirs))
	for _, d := range dirs {
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

type procStat struct {
	comm  string
	state byte
	ppid  int
}

// readStat parses /proc/<pid>/stat (comm may contain spaces and parentheses).
func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(raw)
	lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if lp < 0 || rp < lp {
		return procStat{}, fmt.Errorf("malformed stat of %d", pid)
	}
	fields := strings.Fields(s[rp+1:])
	if len(fields) < 2 {
		return procStat{}, fmt.Errorf("malformed stat of %d", pid)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return procStat{}, err
	}
	return procStat{comm: s[lp+1 : rp], state: fields[0][0], ppid: ppid}, nil
}

// envValue is the value of the variable prefix names ("NAME=") in pid's environment.
func envValue(pid int, prefix string) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return ""
	}
	for kv := range bytes.SplitSeq(raw, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(prefix)); ok {
			return string(v)
		}
	}
	return ""
}

func describe(pid int) string {
	st, err := readStat(pid)
	if err != nil {
		return strconv.Itoa(pid)
	}
	return fmt.Sprintf("%d(%s %c ppid %d)", pid, st.comm, st.state, st.ppid)
}

// eventsOf renders a bot's events as state/sub_code{metadata}.
func eventsOf(b fleet.Bot) []string {
	out := make([]string, len(b.Events))
	for i, e := range b.Events {
		out[i] = e.NewState
		if e.SubCode != "" {
			out[i] += "/" + e.SubCode
		}
		if len(e.Metadata) > 0 {
			out[i] += " " + fmt.Sprint(e.Metadata)
		}
	}
	return out
}
