// Package schema owns the switch's tables: banks, post offices, kiosks,
// withdrawals, the outbox, signing keys (switch/code), bank clients, users
// and sessions (switch/auth, the teller's logins among them) and
// idempotency keys (switch/idem). Their migrations are in migrations/,
// versions 00020-00039, and past it, with 00039 used, versions of
// 00040-00049 that ledger/recon does not use (00042 by hand-out: recon has
// 00040-00041; the runner refuses a version two sets both use).
//
// It also names the whole database of the switch (All): the ledger's
// tables, the switch's and recon's, applied by ledger/schema's one runner.
// It holds no code of the switch, so that the switch's sub-packages' tests
// can migrate with it without an import cycle.
//
// Of this module it imports only ledger/schema and ledger/recon (for their
// migration sets).
package schema

import (
	"context"
	"embed"

	"github.com/softatm/softatm/ledger/recon"
	ledgerschema "github.com/softatm/softatm/ledger/schema"
)

//go:embed migrations/*.sql
var files embed.FS

// Switch is the switch's own migrations.
var Switch = ledgerschema.Set{Owner: "switch", FS: ledgerschema.Sub(files, "migrations"), First: 20, Last: 49}

// All is every set of the switch's database, in the order their ranges
// come: what `softatm migrate` applies.
func All() []ledgerschema.Set {
	return []ledgerschema.Set{ledgerschema.Ledger, Switch, recon.Migrations}
}

// Migrate applies every pending migration of All to the database at url
// and returns the version it ends at.
func Migrate(ctx context.Context, url string) (int64, error) {
	return ledgerschema.Migrate(ctx, url, All()...)
}
