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

const keysUsage = "keys: generate [-id ID] [-activate] | list | activate ID | retire ID | new-kek PATH | rewrap -old-key-file OLD -key-file NEW"

// runKeys manages the Ed25519 keys that sign withdrawal codes. New codes use
// the active key; a retired key keeps verifying the codes it signed until
// they have all expired. With a key-encryption key (-key-file, as for serve)
// new private seeds are sealed with it; `rewrap` moves every seed to a new
// one (see README, "Security").
func runKeys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(keysUsage)
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	url := fs.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	id := fs.String("id", "", "generate: key id, 1-8 characters A-Z0-9 (default: from the date)")
	activate := fs.Bool("activate", false, "generate: activate the new key at once (retiring the active one)")
	keyFile := fs.String("key-file", os.Getenv("SOFTATM_KEY_FILE"), "file holding the key-encryption key of the private seeds (SOFTATM_KEY_FILE; or the key in SOFTATM_KEK)")
	oldKeyFile := fs.String("old-key-file", "", "rewrap: file holding the key-encryption key the seeds are sealed with now (none: seeds in clear)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "new-kek" {
		if fs.NArg() != 1 {
			return errors.New("keys new-kek: give the file to write")
		}
		return writeKEKFile(fs.Arg(0))
	}
	kek, err := loadKEK(*keyFile, os.Getenv("SOFTATM_KEK"))
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	var opts []code.PGOption
	if kek != nil {
		opts = append(opts, code.WithKEK(kek))
	}
	if args[0] == "list" {
		// Listing shows public halves only, so it needs no KEK.
		opts = append(opts, code.WithPublicsOnly())
	}
	store := code.NewPGKeyStore(pool, opts...)
	now := time.Now()
	switch args[0] {
	case "generate":
		if kek == nil {
			fmt.Fprintln(os.Stderr, "warning: no -key-file: the new private seed is stored in clear until serve seals it")
		}
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
	case "rewrap":
		if kek == nil {
			return errors.New("keys rewrap: -key-file (the new key-encryption key) is required")
		}
		old, err := loadKEK(*oldKeyFile, "")
		if err != nil {
			return err
		}
		n, err := store.Rewrap(ctx, old)
		if err != nil {
			return err
		}
		fmt.Printf("%d private seeds sealed with %s\n", n, kek)
	default:
		return fmt.Errorf("keys: unknown operation %q; %s", args[0], keysUsage)
	}
	return nil
}

// loadKEK reads the key-encryption key from the file at path, or else from
// text (SOFTATM_KEK); with neither it returns nil: no KEK.
func loadKEK(path, text string) (*code.KEK, error) {
	if path == "" {
		if text == "" {
			return nil, nil
		}
		k, err := code.ParseKEK([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("SOFTATM_KEK: %w", err)
		}
		return k, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the key-encryption key: %w", err)
	}
	k, err := code.ParseKEK(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// writeKEKFile writes a fresh key-encryption key to path, readable by its
// owner only; it never overwrites a file, since losing a KEK loses every
// seed sealed with it.
func writeKEKFile(path string) error {
	text, err := code.NewKEKText()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the key-encryption key: %w", err)
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	k, err := code.ParseKEK(text)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s to %s\n", k, path)
	return nil
}
