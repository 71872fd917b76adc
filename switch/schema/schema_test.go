package schema

import (
	"context"
	"io/fs"
	"os"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"

	"github.com/softatm/softatm/fixtures/localsrv"
	ledgerschema "github.com/softatm/softatm/ledger/schema"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

// TestMigrateAllTwice: every set of the switch's database lies in its
// range and applies, and a second run changes nothing.
func TestMigrateAllTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := localsrv.MustDatabase(t)
	v1, err := Migrate(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var newest int64
	for _, s := range All() {
		names, err := fs.Glob(s.FS, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			v, err := goose.NumericComponent(name)
			if err != nil {
				t.Fatal(err)
			}
			newest = max(newest, v)
		}
	}
	if v1 != newest {
		t.Fatalf("version %d after every migration, want the newest file's, %d", v1, newest)
	}
	v2, err := Migrate(ctx, url)
	if err != nil || v2 != v1 {
		t.Fatalf("second migrate: version %d err %v, want %d", v2, err, v1)
	}
}

// TestDatabaseOfTheOneDirectoryLayout: a database migrated when every
// migration was in one directory (one set, versions 00010-00069) is
// current for All: the versions are the same, so nothing runs again.
func TestDatabaseOfTheOneDirectoryLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	one := fstest.MapFS{}
	for _, s := range All() {
		names, err := fs.Glob(s.FS, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			b, err := fs.ReadFile(s.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			one[name] = &fstest.MapFile{Data: b}
		}
	}
	url := localsrv.MustDatabase(t)
	v1, err := ledgerschema.Migrate(ctx, url, ledgerschema.Set{Owner: "one directory", FS: one, First: 10, Last: 69})
	if err != nil {
		t.Fatal(err)
	}
	// A migration that ran again would fail: its CREATE TABLE exists.
	v2, err := Migrate(ctx, url)
	if err != nil || v2 != v1 {
		t.Fatalf("migrate with All after the one-directory layout: version %d %v, want %d", v2, err, v1)
	}
}
