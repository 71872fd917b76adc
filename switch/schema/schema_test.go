package schema

import (
	"context"
	"os"
	"testing"

	"github.com/softatm/softatm/fixtures/localsrv"
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
	last := All()[len(All())-1]
	if v1 < last.First || v1 > last.Last {
		t.Fatalf("version %d after every migration, want one of %s's", v1, last.Owner)
	}
	v2, err := Migrate(ctx, url)
	if err != nil || v2 != v1 {
		t.Fatalf("second migrate: version %d err %v, want %d", v2, err, v1)
	}
}
