package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	switchschema "github.com/softatm/softatm/switch/schema"
)

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	url := fs.String("database", os.Getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("DATABASE_URL (or -database) is required")
	}
	v, err := switchschema.Migrate(ctx, *url)
	if err != nil {
		return err
	}
	fmt.Printf("database at version %d\n", v)
	return nil
}
