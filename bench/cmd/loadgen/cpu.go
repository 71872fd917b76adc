package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux this tool runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// procTimes is one process's CPU time from /proc/<pid>/stat, in ticks:
// its own (utime+stime), its waited-for children's (cutime+cstime), and
// its parent.
type procTimes struct {
	own, children, ppid int64
}

func readProc(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	// The command name is in parentheses and may hold spaces: fields start
	// after the last ')'. Field 3 is the state; ppid is 4, utime 14.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	return procTimes{own: n(14) + n(15), children: n(16) + n(17), ppid: n(4)}, nil
}

// treeTicks is the CPU time of a server that forks a process per
// connection (PostgreSQL): the parent's own and reaped children's time plus
// every live child's. Taken before and after a run, the difference counts
// a backend that ended during the run once (alive before, reaped after).
func treeTicks(parent int) (int64, error) {
	p, err := readProc(parent)
	if err != nil {
		return 0, err
	}
	total := p.own + p.children
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == parent {
			continue
		}
		if c, err := readProc(pid); err == nil && c.ppid == int64(parent) {
			total += c.own
		}
	}
	return total, nil
}

// cpuProcs names the processes whose CPU a run is charged with.
type cpuProcs struct {
	names []string
	pids  []int
	tree  []bool // PostgreSQL: the postmaster and its children
}

func (c *cpuProcs) add(name string, pid int, tree bool) {
	if pid > 0 {
		c.names, c.pids, c.tree = append(c.names, name), append(c.pids, pid), append(c.tree, tree)
	}
}

// findProcs finds the switch, PostgreSQL, Redis and this process (load
// generator and, in this process, the issuer simulator).
func findProcs(ctx context.Context, w *world) *cpuProcs {
	c := &cpuProcs{}
	c.add("switch", w.SwitchPID, false)
	if w.DBURL != "" {
		if conn, err := pgx.Connect(ctx, w.DBURL); err == nil {
			var backend int
			if conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend) == nil {
				if p, err := readProc(backend); err == nil {
					c.add("PostgreSQL", int(p.ppid), true)
				}
			}
			conn.Close(ctx)
		}
	}
	if w.Redis != "" {
		if opt, err := redis.ParseURL(w.Redis); err == nil {
			r := redis.NewClient(opt)
			if info, err := r.Info(ctx, "server").Result(); err == nil {
				for _, line := range strings.Split(info, "\n") {
					if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
						pid, _ := strconv.Atoi(v)
						c.add("Redis", pid, false)
					}
				}
			}
			r.Close()
		}
	}
	name := "load generator"
	if w.Sim != nil {
		name = "load generator + issuer simulator (one process)"
	}
	c.add(name, os.Getpid(), false)
	return c
}

// sample reads every process's CPU ticks (-1: could not be read).
func (c *cpuProcs) sample() []int64 {
	out := make([]int64, len(c.pids))
	for i, pid := range c.pids {
		out[i] = -1
		if c.tree[i] {
			if t, err := treeTicks(pid); err == nil {
				out[i] = t
			}
		} else if p, err := readProc(pid); err == nil {
			out[i] = p.own
		}
	}
	return out
}

// cpuUse is the CPU a process used over a run.
type cpuUse struct {
	name    string
	seconds float64
	server  bool // counted in the server's CPU per withdrawal
}

func (c *cpuProcs) use(before, after []int64) []cpuUse {
	var out []cpuUse
	for i := range c.pids {
		if before[i] < 0 || after[i] < 0 {
			continue
		}
		out = append(out, cpuUse{name: c.names[i], seconds: float64(after[i]-before[i]) / clockTicks,
			server: !strings.HasPrefix(c.names[i], "load generator")})
	}
	return out
}
