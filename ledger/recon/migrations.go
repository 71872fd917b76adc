package recon

import (
	"embed"

	"github.com/softatm/softatm/ledger/schema"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is recon's own tables (recon_files, recon_lines,
// recon_items), versions 00040-00049; ledger/schema's Migrate applies them.
var Migrations = schema.Set{Owner: "ledger/recon", FS: schema.Sub(migrationFiles, "migrations"), First: 40, Last: 49}
