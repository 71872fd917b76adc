package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/softatm/softatm/switch/code"
)

// runKeys manages the Ed25519 keys that sign withdrawal codes. New codes use
// the active key; a retired key keeps verifying the codes it signed until
// they have all expired.
func runKeys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("keys: generate [-id ID] [-activate] | list | activate ID | retire ID")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	url := fs.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	id := fs.String("id", "", "generate: key id, 1-8 characters A-Z0-9 (default: from the date)")
	activate := fs.Bool("activate", false, "generate: activate the new key at once (retiring the active one)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	pool, err := openPool(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := code.NewPGKeyStore(pool)
	now := time.Now()
	switch args[0] {
	case "generate":
		if *id == "" {
			*id = newKeyID(now)
		}
		if *activate {
			k, err := code.Rotate(ctx, store, *id, now)
			if err == nil {
				fmt.Println("generated and activated", k)
			}
			return err
		}
		k, err := code.GenerateKey(*id, now)
		if err != nil {
			return err
		}
		if err := store.Create(ctx, k); err != nil {
			return err
		}
		fmt.Println("generated", k)
	case "list":
		keys, err := store.Keys(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			fmt.Println(k)
		}
	case "activate", "retire":
		if fs.NArg() != 1 {
			return fmt.Errorf("keys %s: give the key id", args[0])
		}
		if args[0] == "activate" {
			err = store.Activate(ctx, fs.Arg(0), now)
		} else {
			err = store.Retire(ctx, fs.Arg(0), now)
		}
		if err == nil {
			fmt.Println("ok")
		}
		return err
	default:
		return fmt.Errorf("keys: unknown operation %q", args[0])
	}
	return nil
}
