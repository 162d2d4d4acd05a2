package browser

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// GroupPSS sums the proportional set size (from /proc/<pid>/smaps_rollup) of
// every live process in process group pgid, in bytes. PSS splits shared pages
// between the processes sharing them, so the sum is what the group costs.
func GroupPSS(pgid int) (int64, error) {
	pids, err := GroupPIDs(pgid)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, pid := range pids {
		n, err := pss(pid)
		if err != nil {
			continue // the process exited between the scan and the read
		}
		total += n
	}
	return total, nil
}

// GroupPIDs lists the processes of process group pgid (zombies included).
func GroupPIDs(pgid int) ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		st, err := ReadStat(pid)
		if err != nil {
			continue
		}
		if st.PGID == pgid {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Stat is the part of /proc/<pid>/stat the engine and its tests look at.
type Stat struct {
	Comm  string
	State byte // R, S, D, Z...
	PPID  int
	PGID  int
}

// ReadStat parses /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	// comm is in parentheses and may itself contain spaces or parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 3 {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return Stat{Comm: string(b[open+1 : end]), State: f[0][0], PPID: ppid, PGID: pgid}, nil
}

func pss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Pss:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse pss of %d: %w", pid, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no Pss line for %d", pid)
}
