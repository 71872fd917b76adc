package schema

import (
	"context"
	"os"
	"testing"

	"github.com/softatm/softatm/fixtures/localsrv"
)

func TestMain(m *testing.M) { os.Exit(localsrv.RunTests(m)) }

func TestMigrateTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	url := MustMigratedDB(t)
	v1, err := Migrate(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if v1 == 0 {
		t.Fatal("no migration applied")
	}
	v2, err := Migrate(context.Background(), url)
	if err != nil || v2 != v1 {
		t.Fatalf("second migrate: version %d err %v, want %d", v2, err, v1)
	}
}
