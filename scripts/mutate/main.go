// Command mutate is the guard mutation suite behind `make mutate`: it takes
// the list of guards that protect money, codes, limits and the ledger
// (guards.txt beside this file), and for each one replaces the guard's exact
// source snippet by its mutated form in a scratch copy of the tree, runs the
// tests named for that guard, and reports whether a test failed (killed) or
// none did (survived).
//
// Why a list of hand-written mutations and not only a generic tool: the
// guards that matter most here are SQL conditions inside string literals
// (`AND state = 'claimed'`, `expires_at > $6`), which operator mutators such
// as gremlins never touch. Each guard names the few tests that must notice
// its loss, so a run stays targeted.
//
// Why here (scripts/mutate) and not under bench/: it is a developer tool
// that checks the tests, run by hand or by `make mutate`; bench/ holds the
// load generator and benchmarks and their recorded results.
//
// Decisions:
//   - The working tree is never written: the tree (tracked and untracked,
//     not ignored files, as `git ls-files` lists them) is copied once to a
//     scratch directory, and each mutation is applied there and undone.
//   - A guard whose original snippet is not found exactly once in its file
//     is reported as rotten and fails the run: when code moves, the list
//     must be re-synced, not silently skipped.
//   - A mutant that does not compile, or a guard whose -run regex matches
//     no test, is reported as broken and fails the run: it tests nothing.
//   - Tests run without -race (the suite's logic catches these mutants; the
//     race detector would triple the time) and with -failfast (the first
//     failing test is enough to kill a mutant).
//   - One private PostgreSQL and one private Redis serve every guard's run
//     (the tests create a database and a key prefix of their own), unless
//     DATABASE_URL / REDIS_URL are set.
//
// This command may import fixtures/localsrv only; it must not import the
// packages it mutates.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/softatm/softatm/fixtures/localsrv"
)

// guardTimeoutDefault bounds one guard's test run (go test -timeout) when
// the guard names no timeout of its own. A mutant that makes a test hang is
// killed by this timeout.
const guardTimeoutDefault = 5 * time.Minute

// Guard is one entry of the list: a snippet of a file, what it becomes when
// the guard is lost, and the tests that must notice.
type Guard struct {
	ID      string
	File    string        // relative to the repository root: the first edit's file
	Edits   []Edit        // applied together; usually one
	Pkgs    []string      // packages whose tests must catch it (./ledger/ ...)
	Run     string        // go test -run regex, to keep the run fast
	Timeout time.Duration // go test -timeout; guardTimeoutDefault when zero
	Why     string        // what goes wrong when the guard is lost
	Line    int           // line in the list file where the guard starts
}

// Edit is one replacement of a guard.
type Edit struct {
	File string // the file of this edit: the `file` line before its `old`
	Old  string // exact original snippet; must occur exactly once in the file
	New  string // its mutated replacement
}

// parseGuards reads the list. A guard is a block that starts with a line
// `[id]` and holds `key = value` lines; each `old` starts an edit that the next `new`
// completes (a guard whose loss needs two places changed has two); `#` starts a comment line. A value is
// taken as written (trimmed), or, when it starts with a double quote, as a Go
// quoted string (for snippets with leading space, tabs or line breaks).
func parseGuards(r io.Reader) ([]Guard, error) {
	var gs []Guard
	var cur *Guard
	var curFile string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			gs = append(gs, Guard{ID: strings.TrimSpace(line[1 : len(line)-1]), Line: n})
			cur, curFile = &gs[len(gs)-1], ""
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: %q outside a [guard] block", n, line)
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want key = value, got %q", n, line)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if strings.HasPrefix(val, `"`) {
			u, err := strconv.Unquote(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: bad quoted string: %v", n, key, err)
			}
			val = u
		}
		switch key {
		case "file":
			// A guard whose loss needs two files changed names each file
			// before its edits.
			if cur.File == "" {
				cur.File = val
			}
			curFile = val
		case "old":
			cur.Edits = append(cur.Edits, Edit{File: curFile, Old: val})
		case "new":
			if len(cur.Edits) == 0 || cur.Edits[len(cur.Edits)-1].New != "" {
				return nil, fmt.Errorf("line %d: new without its old", n)
			}
			cur.Edits[len(cur.Edits)-1].New = val
		case "pkgs":
			cur.Pkgs = strings.Fields(val)
		case "run":
			cur.Run = val
		case "timeout":
			d, err := time.ParseDuration(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: timeout: %v", n, err)
			}
			cur.Timeout = d
		case "why":
			cur.Why = val
		default:
			return nil, fmt.Errorf("line %d: unknown key %q", n, key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, g := range gs {
		switch {
		case g.ID == "":
			return nil, fmt.Errorf("line %d: empty guard id", g.Line)
		case seen[g.ID]:
			return nil, fmt.Errorf("line %d: guard %s listed twice", g.Line, g.ID)
		case g.File == "" || len(g.Edits) == 0 || len(g.Pkgs) == 0:
			return nil, fmt.Errorf("guard %s (line %d): file, old and pkgs are required", g.ID, g.Line)
		}
		for _, e := range g.Edits {
			if e.Old == "" || e.Old == e.New {
				return nil, fmt.Errorf("guard %s (line %d): an edit with an empty old, or new equal to old", g.ID, g.Line)
			}
		}
		seen[g.ID] = true
	}
	return gs, nil
}

// selectGuards keeps the guards named in ids (comma-separated; empty: all).
func selectGuards(gs []Guard, ids string) ([]Guard, error) {
	if strings.TrimSpace(ids) == "" {
		return gs, nil
	}
	byID := map[string]Guard{}
	for _, g := range gs {
		byID[g.ID] = g
	}
	var out []Guard
	for _, id := range strings.Split(ids, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		g, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("no guard %q in the list", id)
		}
		out = append(out, g)
	}
	return out, nil
}

// byFile splits g into one guard per file it edits, each with that file's
// edits, in the order the files first appear.
func (g Guard) byFile() []Guard {
	var out []Guard
	at := map[string]int{}
	for _, e := range g.Edits {
		f := e.File
		if f == "" {
			f = g.File
		}
		i, ok := at[f]
		if !ok {
			i = len(out)
			at[f] = i
			sub := g
			sub.File, sub.Edits = f, nil
			out = append(out, sub)
		}
		out[i].Edits = append(out[i].Edits, e)
	}
	return out
}

// checkSnippet returns why g cannot be applied to src, or "" when each of
// its original snippets occurs exactly once.
func checkSnippet(g Guard, src []byte) string {
	for i, e := range g.Edits {
		which := "original snippet"
		if len(g.Edits) > 1 {
			which = fmt.Sprintf("original snippet %d", i+1)
		}
		switch n := bytes.Count(src, []byte(e.Old)); n {
		case 1:
		case 0:
			return which + " not found in " + g.File
		default:
			return fmt.Sprintf("%s found %d times in %s (make it longer)", which, n, g.File)
		}
	}
	return ""
}

// apply returns src with every edit of g made.
func apply(g Guard, src []byte) []byte {
	for _, e := range g.Edits {
		src = bytes.Replace(src, []byte(e.Old), []byte(e.New), 1)
	}
	return src
}

// Outcome of one guard.
type Outcome string

const (
	Killed   Outcome = "KILLED"
	Survived Outcome = "SURVIVED"
	Broken   Outcome = "BROKEN" // the mutant does not compile, or no test ran
	Rotten   Outcome = "ROTTEN" // the original snippet is not in its file exactly once
)

// Result is what one guard's run found.
type Result struct {
	Guard    Guard
	Outcome  Outcome
	Tests    []string // the failing tests that caught the mutant
	Detail   string
	Duration time.Duration
}

// testEvent is one line of `go test -json`.
type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// judge turns a test run's JSON output and exit error into a result.
func judge(out []byte, runErr error) (Outcome, []string, string) {
	var failed []string
	buildFailed := false
	ran := 0
	var tail []string
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var ev testEvent
		if json.Unmarshal(line, &ev) != nil || ev.Action == "" {
			// Not an event: compiler output printed beside the JSON.
			tail = append(tail, string(line))
			continue
		}
		switch ev.Action {
		case "run":
			ran++
		case "fail":
			if ev.Test != "" {
				// A failing subtest's parents fail too; keep the deepest.
				failed = slices.DeleteFunc(failed, func(t string) bool { return strings.HasPrefix(ev.Test, t+"/") })
				if !slices.ContainsFunc(failed, func(t string) bool { return strings.HasPrefix(t, ev.Test+"/") }) {
					failed = append(failed, ev.Test)
				}
			}
		case "build-fail":
			buildFailed = true
		case "build-output", "output":
			if ev.Output != "" {
				tail = append(tail, strings.TrimRight(ev.Output, "\n"))
			}
		}
	}
	if len(tail) > 8 {
		tail = tail[len(tail)-8:]
	}
	detail := strings.Join(tail, " | ")
	switch {
	case runErr == nil && ran == 0:
		// A renamed test must not pass for a survivor nor for a kill.
		return Broken, nil, "the run regex matches no test"
	case runErr == nil:
		return Survived, nil, ""
	case buildFailed && len(failed) == 0:
		return Broken, nil, detail
	case len(failed) == 0:
		var ee *exec.ExitError
		if !errors.As(runErr, &ee) {
			return Broken, nil, runErr.Error()
		}
		// The package failed outside any one test (TestMain, a panic
		// during init, a timeout): still the mutant's doing.
		return Killed, []string{"(package)"}, detail
	default:
		return Killed, failed, ""
	}
}

// listFiles returns the repository's files, tracked and untracked but not
// ignored, as git lists them.
func listFiles(root string) ([]string, error) {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	var files []string
	seen := map[string]bool{}
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" && !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	return files, nil
}

// copyTree copies files from root to dst; a listed file deleted from the
// working tree is skipped.
func copyTree(root, dst string, files []string) error {
	for _, f := range files {
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

type runner struct {
	scratch string
	env     []string
	logDir  string
	goBin   string
	race    bool
}

// run applies g in the scratch tree, runs its tests, and undoes it.
func (r *runner) run(ctx context.Context, g Guard) Result {
	start := time.Now()
	res := Result{Guard: g}
	for _, part := range g.byFile() {
		path := filepath.Join(r.scratch, part.File)
		orig, err := os.ReadFile(path)
		if err != nil {
			res.Outcome, res.Detail = Rotten, err.Error()
			return res
		}
		if why := checkSnippet(part, orig); why != "" {
			res.Outcome, res.Detail = Rotten, why
			return res
		}
		if err := os.WriteFile(path, apply(part, orig), 0o644); err != nil {
			res.Outcome, res.Detail = Broken, err.Error()
			return res
		}
		defer func() {
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				// The scratch tree is now wrong for every later guard.
				fmt.Fprintf(os.Stderr, "mutate: restoring %s in the scratch tree: %v\n", part.File, err)
				os.Exit(2)
			}
		}()
	}
	timeout := g.Timeout
	if timeout == 0 {
		timeout = guardTimeoutDefault
	}
	args := []string{"test", "-json", "-count=1", "-failfast", "-vet=off", "-timeout", timeout.String()}
	if r.race {
		args = append(args, "-race")
	}
	if g.Run != "" {
		args = append(args, "-run", g.Run)
	}
	args = append(args, g.Pkgs...)
	cmd := exec.CommandContext(ctx, r.goBin, args...)
	cmd.Dir = r.scratch
	cmd.Env = r.env
	// The JSON stream on stdout, compiler errors on stderr: both judged.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 30 * time.Second
	runErr := cmd.Run()
	if r.logDir != "" {
		_ = os.WriteFile(filepath.Join(r.logDir, g.ID+".json"), out.Bytes(), 0o644)
	}
	res.Outcome, res.Tests, res.Detail = judge(out.Bytes(), runErr)
	if ctx.Err() != nil {
		res.Outcome, res.Detail = Broken, "interrupted"
	}
	res.Duration = time.Since(start)
	return res
}

// startServers starts a private PostgreSQL and Redis in dir (each unless
// DATABASE_URL / REDIS_URL is set) and returns the environment that points
// the tests at them.
func startServers(ctx context.Context, dir string) (env []string, stop func(), err error) {
	env = os.Environ()
	var servers []*localsrv.Server
	stop = func() {
		for _, s := range servers {
			s.Stop()
		}
	}
	if os.Getenv("DATABASE_URL") == "" {
		pg, err := localsrv.StartPostgres(ctx, filepath.Join(dir, "pg"), localsrv.PostgresOptions{MaxConnections: 400})
		if err != nil {
			return nil, stop, fmt.Errorf("private PostgreSQL: %w", err)
		}
		servers = append(servers, pg)
		if err := localsrv.WaitPostgres(ctx, pg.URL); err != nil {
			stop()
			return nil, stop, fmt.Errorf("private PostgreSQL: %w", err)
		}
		env = append(env, "DATABASE_URL="+pg.URL)
	}
	if os.Getenv("REDIS_URL") == "" {
		rd, err := localsrv.StartRedis(ctx, filepath.Join(dir, "redis"), localsrv.RedisOptions{})
		if err != nil {
			stop()
			return nil, stop, fmt.Errorf("private Redis: %w", err)
		}
		servers = append(servers, rd)
		env = append(env, "REDIS_URL="+rd.URL)
	}
	return env, stop, nil
}

// execWithServers runs command (sh -c) in root with the private servers up:
// gremlins runs a package's tests once per mutant, and one server for all
// of them saves an initdb each time.
func execWithServers(root, command string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "softatm-mutate-servers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	env, stopServers, err := startServers(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}
	defer stopServers()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir, cmd.Env = root, env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}
	return 0
}

func main() { os.Exit(Main(os.Args[1:])) }

// Main runs the suite and returns the exit code: 0 only when every selected
// guard was killed.
func Main(argv []string) int {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	list := fs.String("list", "scripts/mutate/guards.txt", "the guard list")
	guards := fs.String("guards", os.Getenv("GUARDS"), "comma-separated guard ids to run (default: all)")
	root := fs.String("root", ".", "repository root (the tree copied to the scratch directory)")
	logDir := fs.String("logs", ".var/mutate", "where each guard's go test -json output is written ('' for nowhere)")
	race := fs.Bool("race", false, "run the tests with -race (slower)")
	check := fs.Bool("check", false, "only check that every guard's snippet is found exactly once; run nothing")
	execCmd := fs.String("exec", "", "run this shell command with the private servers' DATABASE_URL / REDIS_URL set, instead of the guards (make mutate-go)")
	if err := fs.Parse(argv); err != nil {
		return 2
	}
	rootAbs, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}
	if *execCmd != "" {
		return execWithServers(rootAbs, *execCmd)
	}
	f, err := os.Open(filepath.Join(rootAbs, *list))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}
	all, err := parseGuards(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mutate: %s: %v\n", *list, err)
		return 2
	}
	sel, err := selectGuards(all, *guards)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}

	// Every snippet is checked against the working tree before anything
	// runs, so a rotten list is reported at once and in full.
	rotten := 0
	for _, g := range sel {
		why := ""
		for _, part := range g.byFile() {
			src, err := os.ReadFile(filepath.Join(rootAbs, part.File))
			if err != nil {
				why = err.Error()
			} else {
				why = checkSnippet(part, src)
			}
			if why != "" {
				break
			}
		}
		if why != "" {
			rotten++
			fmt.Printf("%-8s %-34s %s (list line %d)\n", Rotten, g.ID, why, g.Line)
		}
	}
	if *check || rotten > 0 {
		fmt.Printf("\n%d guards checked, %d rotten\n", len(sel), rotten)
		if rotten > 0 {
			return 1
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	scratch, err := os.MkdirTemp("", "softatm-mutate-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}
	defer os.RemoveAll(scratch)
	files, err := listFiles(rootAbs)
	if err == nil {
		err = copyTree(rootAbs, filepath.Join(scratch, "tree"), files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate: copying the tree:", err)
		return 2
	}
	env, stopServers, err := startServers(ctx, scratch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return 2
	}
	defer stopServers()
	r := &runner{scratch: filepath.Join(scratch, "tree"), env: env, goBin: "go", race: *race}
	if *logDir != "" {
		r.logDir = filepath.Join(rootAbs, *logDir)
		if err := os.MkdirAll(r.logDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "mutate:", err)
			return 2
		}
	}
	if gb := os.Getenv("GO"); gb != "" {
		r.goBin = gb
	}

	fmt.Printf("mutate: %d guards, scratch tree %s\n", len(sel), r.scratch)
	count := map[Outcome]int{}
	var bad []string
	for i, g := range sel {
		if ctx.Err() != nil {
			break
		}
		res := r.run(ctx, g)
		count[res.Outcome]++
		info := ""
		switch res.Outcome {
		case Killed:
			info = "by " + strings.Join(res.Tests, ", ")
		default:
			info = res.Detail
			if res.Outcome == Survived {
				info = "no test failed (" + strings.Join(g.Pkgs, " ") + " -run " + g.Run + "): " + g.Why
			}
			bad = append(bad, g.ID)
		}
		fmt.Printf("[%2d/%d] %-8s %-34s %6.1fs  %s\n", i+1, len(sel), res.Outcome, g.ID, res.Duration.Seconds(), info)
	}
	ran := count[Killed] + count[Survived] + count[Broken] + count[Rotten]
	fmt.Printf("\n%d guards: %d killed, %d survived, %d broken, %d rotten, %d not run; %s\n",
		len(sel), count[Killed], count[Survived], count[Broken], count[Rotten], len(sel)-ran,
		time.Since(start).Round(time.Second))
	if len(bad) > 0 {
		fmt.Printf("not killed: %s\n", strings.Join(bad, ","))
	}
	if count[Killed] != len(sel) {
		return 1
	}
	return 0
}
