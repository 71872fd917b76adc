package schema

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/softatm/softatm/fixtures/localsrv"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

func sqlFile(up string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("-- +goose Up\n" + up + "\n-- +goose Down\nSELECT 1;\n")}
}

func TestMigrateTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	url := localsrv.MustDatabase(t)
	v1, err := Migrate(context.Background(), url, Ledger)
	if err != nil {
		t.Fatal(err)
	}
	if v1 < Ledger.First || v1 > Ledger.Last {
		t.Fatalf("version %d after the ledger's migrations", v1)
	}
	v2, err := Migrate(context.Background(), url, Ledger)
	if err != nil || v2 != v1 {
		t.Fatalf("second migrate: version %d err %v, want %d", v2, err, v1)
	}
}

// TestMigrateMergesSetsInVersionOrder: sets given in any order are applied
// in version order, and a set's new migration whose version is below one
// already applied (another set's) is applied, not refused: with ranges per
// package that is the normal case.
func TestMigrateMergesSetsInVersionOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := localsrv.MustDatabase(t)
	a := Set{Owner: "a", First: 1, Last: 9, FS: fstest.MapFS{
		"00001_a.sql": sqlFile("CREATE TABLE a (id INT PRIMARY KEY);"),
	}}
	b := Set{Owner: "b", First: 10, Last: 19, FS: fstest.MapFS{
		// It needs a's table: it only works when a's 00001 ran first.
		"00010_b.sql": sqlFile("CREATE TABLE b (id INT PRIMARY KEY REFERENCES a (id));"),
	}}
	if v, err := Migrate(ctx, url, b, a); err != nil || v != 10 {
		t.Fatalf("migrate: version %d, %v", v, err)
	}
	a.FS.(fstest.MapFS)["00002_a_more.sql"] = sqlFile("ALTER TABLE a ADD COLUMN note TEXT;")
	if _, err := Migrate(ctx, url, a, b); err != nil {
		t.Fatalf("a new migration of a, below b's applied one: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'note'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("a's new migration was not applied: %d %v", n, err)
	}
}

// TestMigrateRefusesMisplacedFiles: a migration outside its set's range
// (put in another package's directory) or a version used twice is refused
// before anything is applied.
func TestMigrateRefusesMisplacedFiles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		sets []Set
		want string
	}{
		{"a switch migration among the ledger's", []Set{{Owner: "ledger", First: 10, Last: 19, FS: fstest.MapFS{
			"00010_ledger.sql": sqlFile("SELECT 1;"), "00025_auth_keyed_hash.sql": sqlFile("SELECT 1;"),
		}}}, "00025_auth_keyed_hash.sql: version 25 is outside ledger's range 00010-00019"},
		{"one version twice", []Set{
			{Owner: "a", First: 1, Last: 20, FS: fstest.MapFS{"00010_x.sql": sqlFile("SELECT 1;")}},
			{Owner: "b", First: 1, Last: 20, FS: fstest.MapFS{"00010_y.sql": sqlFile("SELECT 1;")}},
		}, "version 10 twice"},
		{"no version", []Set{{Owner: "a", First: 1, Last: 9, FS: fstest.MapFS{"a.sql": sqlFile("SELECT 1;")}}}, "a.sql"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := localsrv.MustDatabase(t)
			_, err := Migrate(ctx, url, c.sets...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("migrate: %v, want an error naming %q", err, c.want)
			}
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d tables after a refused migrate (%v), want none", n, err)
			}
		})
	}
}

// TestLedgerOwnsOnlyItsRange keeps the ledger's directory the ledger's: a
// migration of another package's tables added here by mistake fails this
// test (and every migrate) with where it belongs.
func TestLedgerOwnsOnlyItsRange(t *testing.T) {
	t.Parallel()
	if _, err := merge([]Set{Ledger}); err != nil {
		t.Fatal(err)
	}
}

// TestImportRules checks, with go list -deps, the import rules that the
// package comments of the ledger's packages state, and that the
// production binary does not link testing (this package and localsrv are
// linked by it).
func TestImportRules(t *testing.T) {
	t.Parallel()
	const module = "github.com/softatm/softatm"
	for _, c := range []struct {
		pkg     string
		allowed []string // packages of this module it may depend on, besides itself
	}{
		{module + "/ledger/schema", nil},
		{module + "/ledger", []string{module}},
		{module + "/ledger/forecast", nil}, // pure: nothing of this module
		{module + "/ledger/recon", []string{module, module + "/ledger", module + "/ledger/schema"}},
		{module + "/cmd/softatm", nil}, // only "testing" is checked
	} {
		t.Run(c.pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", c.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", c.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				switch {
				case dep == "testing" || strings.HasPrefix(dep, "testing/"):
					t.Errorf("%s links %s", c.pkg, dep)
				case strings.HasSuffix(c.pkg, "/cmd/softatm"):
				case dep == c.pkg:
				case (dep == module || strings.HasPrefix(dep, module+"/")) && !slices.Contains(c.allowed, dep):
					t.Errorf("%s imports %s", c.pkg, dep)
				}
			}
		})
	}
}
