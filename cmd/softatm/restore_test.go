package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/softatm/softatm/fixtures/localsrv"
	switchschema "github.com/softatm/softatm/switch/schema"
)

// archiveWaitMax bounds the wait for a switched WAL segment to be archived.
const archiveWaitMax = 60 * time.Second

// TestRestoreDrill runs scripts/restore-drill.sh as an operator would: a
// database with WAL archiving, a base backup, payouts' worth of postings,
// then a mistake (a till's balance changed by hand, which `softatm admin
// check` catches on the live database). The drill restores the base
// backup plus the archived WAL to the instant before the mistake, in a
// fresh directory, and `softatm admin check` holds there, with the
// postings made after the base backup present and the mistake absent.
func TestRestoreDrill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "softatm-drill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	archive := filepath.Join(dir, "archive")
	if err := os.MkdirAll(archive, 0o700); err != nil {
		t.Fatal(err)
	}
	chownPostgres(t, dir, archive)

	// A server with archiving on: set, then restarted to take effect.
	srv, err := localsrv.StartPostgres(ctx, filepath.Join(dir, "pg"), localsrv.PostgresOptions{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := localsrv.WaitPostgres(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER SYSTEM SET archive_mode = on`,
		fmt.Sprintf(`ALTER SYSTEM SET archive_command = 'cp %%p %s/%%f'`, archive)} {
		if _, err := pgExec(ctx, srv.URL, q); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	if srv, err = localsrv.StartPostgres(ctx, filepath.Join(dir, "pg"), localsrv.PostgresOptions{Durable: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := localsrv.WaitPostgres(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	db, err := localsrv.CreateDatabase(ctx, srv.URL, "drill")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := switchschema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	admin := func(args ...string) error {
		return runAdmin(ctx, append([]string{args[0], "-database", db}, args[1:]...))
	}
	if err := admin("post-office", "-code", "LS-009", "-name", "Loc Binh", "-opening-cash", "1000000"); err != nil {
		t.Fatal(err)
	}

	base := filepath.Join(dir, "base")
	if out, err := exec.Command(pgBin(t, "pg_basebackup"), "-d", db, "-D", base, "-Fp", "-X", "none", "-c", "fast").CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	// After the base backup: postings the restore must replay from the WAL.
	for i := range 3 {
		if err := admin("replenish", "-post-office", "LS-009", "-amount", "2000000", "-ref", "DRILL-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	var target time.Time
	if err := pgQueryRow(ctx, db, `SELECT clock_timestamp()`, &target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the mistake commits strictly after the target
	if _, err := pgExec(ctx, db, `UPDATE accounts SET debits_posted = debits_posted + 1 WHERE code = 'po:LS-009:till'`); err != nil {
		t.Fatal(err)
	}
	if err := admin("check"); !errors.Is(err, errCheckFailed) {
		t.Fatalf("admin check on the live database after the mistake: %v, want %v", err, errCheckFailed)
	}
	// Archive the segment holding all of it.
	var segment string
	if err := pgQueryRow(ctx, db, `SELECT pg_walfile_name(pg_switch_wal())`, &segment); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(archiveWaitMax)
	for !fileExists(filepath.Join(archive, segment)) {
		if time.Now().After(deadline) {
			t.Fatalf("WAL segment %s not archived after %s", segment, archiveWaitMax)
		}
		time.Sleep(100 * time.Millisecond)
	}

	bin := filepath.Join(dir, "softatm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building softatm: %v\n%s", err, out)
	}
	port, err := freeLowPort()
	if err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(dir, "restored")
	cmd := exec.Command("sh", "../../scripts/restore-drill.sh", base, archive, target.Format("2006-01-02 15:04:05.999999-07:00"), restored, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "SOFTATM="+bin, "PGDATABASE=drill", "PGUSER=softatm", "KEEP=1")
	out, err := cmd.CombinedOutput()
	t.Logf("restore-drill.sh:\n%s", out)
	url := fmt.Sprintf("postgres://softatm@127.0.0.1:%d/drill?sslmode=disable", port)
	t.Cleanup(func() { stopRestored(t, restored) })
	if err != nil {
		t.Fatalf("restore drill failed: %v", err)
	}
	if !strings.Contains(string(out), "debits_equal_credits") {
		t.Fatalf("the drill did not run softatm admin check")
	}
	var till int64
	if err := pgQueryRow(ctx, url, `SELECT debits_posted - credits_posted FROM accounts WHERE code = 'po:LS-009:till'`, &till); err != nil {
		t.Fatal(err)
	}
	if till != 1_000_000+3*2_000_000 {
		t.Fatalf("restored till holds %d, want %d (opening cash and the three replenishments, not the mistake)", till, 1_000_000+3*2_000_000)
	}
}

func pgExec(ctx context.Context, url, q string) (int64, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	tag, err := pool.Exec(ctx, q)
	return tag.RowsAffected(), err
}

func pgQueryRow(ctx context.Context, url, q string, dest ...any) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return pool.QueryRow(ctx, q).Scan(dest...)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// pgBin finds one of PostgreSQL's programs in Debian's folders.
func pgBin(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(ms) == 0 {
		t.Fatalf("%s not found (apt-get install -y postgresql)", name)
	}
	return ms[len(ms)-1]
}

// chownPostgres gives dirs to the postgres user when we are root (the
// server runs as that user and archives into them).
func chownPostgres(t *testing.T, dirs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range dirs {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
}

// freeLowPort is a free loopback port below 32768.
func freeLowPort() (int, error) {
	for p := 24000 + os.Getpid()%4000; p < 32000; p += 7 {
		if l, err := localsrvListen(p); err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port below 32768")
}

// stopRestored stops the restored server the drill left running (KEEP=1).
func stopRestored(t *testing.T, dir string) {
	t.Helper()
	args := []string{"-D", dir, "-m", "immediate", "-w", "stop"}
	cmd := exec.Command(pgBin(t, "pg_ctl"), args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", pgBin(t, "pg_ctl")}, args...)...)
	}
	_ = cmd.Run()
}

func localsrvListen(port int) (interface{ Close() error }, error) {
	return net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
}
