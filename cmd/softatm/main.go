// Command softatm is the one binary of the switch:
//
//	softatm serve     the switch: bank API, kiosk and finance pages, workers
//	softatm banksim   the issuer simulator, a real ISO 8583 peer
//	softatm migrate   apply the embedded database migrations
//	softatm keys      generate, list, activate and retire code-signing keys
//	softatm admin     create banks, clients, post offices, kiosks and users; check the ledger
//	softatm recon     settlement reports and bank-file reconciliation
//	softatm demo      everything at once, on private servers (make run)
//
// main hands off to a run function per subcommand; each stops cleanly on
// SIGINT or SIGTERM.
//
// The binary must not link package testing, through any package: test
// helpers belong in test binaries (imports_test.go at the module root checks
// this and every other import rule of a package comment).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var commands = map[string]func(ctx context.Context, args []string) error{
	"serve":   runServe,
	"banksim": runBanksim,
	"migrate": runMigrate,
	"keys":    runKeys,
	"admin":   runAdmin,
	"recon":   runRecon,
	"demo":    runDemo,
	"demo-ha": runDemoHA,
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: softatm <command> [flags]

commands:
  serve     run the switch (bank API, kiosk and finance pages, outbox and sweeper)
  banksim   run the issuer simulator
  migrate   apply database migrations
  keys      manage code-signing keys: generate | list | activate ID | retire ID | new-kek PATH | rewrap
  admin     bank | client | post-office | kiosk | user | load-demo | check
  recon     settlement | import | report
  demo      start everything on private servers and print where to look
  demo-ha   the same on a pg_auto_failover cluster, Redis Sentinel and two switches (make run-ha)

Run 'softatm <command> -h' for a command's flags.`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "softatm "+os.Args[1]+":", err)
		os.Exit(1)
	}
}
