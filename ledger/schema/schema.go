// Package schema owns the ledger's tables (accounts, transfers, business
// days, bank settlements, till counts: migrations/, versions 00010-00019)
// and the one runner that applies every package's migrations to a
// database.
//
// Each package owns its own tables' migrations, as a Set of goose SQL
// files embedded in the binary, in a version range of its own:
//
//	00010-00019 ledger          ledger/schema/migrations (Ledger)
//	00020-00039 switch          switch/schema/migrations: withdrawals, outbox,
//	                            banks, post offices, kiosks, signing keys,
//	                            auth, idempotency keys (the teller's tables
//	                            are among them)
//	00040-00049 ledger/recon    ledger/recon/migrations: settlement files and
//	                            reconciliation items
//	00050-00069 switch          switch/schema/migrations, once 00020-00039
//	                            was full
//
// Migrate merges the sets it is given into one list and applies it in
// version order with one goose version table, so a database migrated
// before the tables were split between packages keeps its versions. A new
// migration takes the next free version in its owner's range; because the
// ranges interleave, a version lower than one already applied (a new
// switch migration after recon's 00040) is applied, not refused. A file
// outside its set's range is refused: it is in the wrong package.
//
// Every statement must run on both PostgreSQL and CockroachDB: UUID keys,
// no sequences on hot paths, no advisory locks, no LISTEN/NOTIFY, no
// deferred constraints.
//
// This package must not import any other softatm package, nor testing
// (the production binary links it); test helpers are in schematest.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// Set is one package's migrations: the goose SQL files at the root of FS,
// each named NNNNN_name.sql with First <= NNNNN <= Last, or in one of the
// ranges of Then.
type Set struct {
	Owner       string // the owning package, for messages
	FS          fs.FS
	First, Last int64
	// Then are further ranges of the package's, taken when the ones
	// before are full.
	Then [][2]int64
}

// owns reports whether version v is in one of the set's ranges.
func (s Set) owns(v int64) bool {
	if v >= s.First && v <= s.Last {
		return true
	}
	return slices.ContainsFunc(s.Then, func(r [2]int64) bool { return v >= r[0] && v <= r[1] })
}

// ranges names the set's ranges, for messages.
func (s Set) ranges() string {
	out := fmt.Sprintf("%05d-%05d", s.First, s.Last)
	for _, r := range s.Then {
		out += fmt.Sprintf(", %05d-%05d", r[0], r[1])
	}
	return out
}

//go:embed migrations/*.sql
var ledgerFiles embed.FS

// Ledger is the ledger's own migrations.
var Ledger = Set{Owner: "ledger", FS: Sub(ledgerFiles, "migrations"), First: 10, Last: 19}

// Sub returns the directory dir of a package's embedded files, for a Set's
// FS. dir is a constant of the calling package, so a bad one is a bug.
func Sub(files embed.FS, dir string) fs.FS {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Migrate applies every pending migration of sets to the database at url
// and returns the version it ends at (the highest applied).
func Migrate(ctx context.Context, url string, sets ...Set) (int64, error) {
	cfg, err := stdlibConfig(url)
	if err != nil {
		return 0, err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrateDB(ctx, db, sets)
}

func migrateDB(ctx context.Context, db *sql.DB, sets []Set) (int64, error) {
	all, err := merge(sets)
	if err != nil {
		return 0, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, all, goose.WithAllowOutofOrder(true))
	if err != nil {
		return 0, fmt.Errorf("loading migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrating: %w", err)
	}
	return p.GetDBVersion(ctx)
}

// union is the files of several sets as one flat file system, for goose:
// it globs the root and opens the files it found.
type union struct {
	owner map[string]fs.FS // file name -> the set's file system
	names []string         // sorted
}

// merge checks every set's files against its range and joins them. Two
// sets with the same version are refused (goose would refuse it too, less
// clearly).
func merge(sets []Set) (union, error) {
	u := union{owner: map[string]fs.FS{}}
	version := map[int64]string{}
	for _, s := range sets {
		names, err := fs.Glob(s.FS, "*.sql")
		if err != nil {
			return union{}, fmt.Errorf("%s migrations: %w", s.Owner, err)
		}
		for _, name := range names {
			v, err := goose.NumericComponent(name)
			if err != nil {
				return union{}, fmt.Errorf("%s migration %s: %w", s.Owner, name, err)
			}
			if !s.owns(v) {
				return union{}, fmt.Errorf("%s migration %s: version %d is outside %s's range %s; it belongs in the migrations of the package whose tables it changes (see the ledger/schema package comment)",
					s.Owner, name, v, s.Owner, s.ranges())
			}
			if other, ok := version[v]; ok {
				return union{}, fmt.Errorf("migration version %d twice: %s and %s/%s", v, other, s.Owner, name)
			}
			version[v] = s.Owner + "/" + name
			u.owner[name] = s.FS
			u.names = append(u.names, name)
		}
	}
	slices.Sort(u.names)
	return u, nil
}

func (u union) Open(name string) (fs.File, error) {
	fsys, ok := u.owner[name]
	if !ok {
		if name == "." {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return fsys.Open(name)
}

// Glob implements fs.GlobFS over the flat list of files.
func (u union) Glob(pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range u.names {
		if strings.Contains(name, "/") {
			continue
		}
		if ok, _ := path.Match(pattern, name); ok {
			out = append(out, name)
		}
	}
	return out, nil
}
