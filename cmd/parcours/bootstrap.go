package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/workspace"
)

// runBootstrap creates a workspace and its first keys in a migrated
// database, for deployments that run `parcours api` and `parcours worker`
// rather than `parcours dev` (which does this on its first start). The keys
// are printed once, on stdout, as lines a shell can `source`; run again, it
// changes nothing and prints the workspace id only.
func runBootstrap(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	slug := fs.String("workspace", "default", "slug of the workspace to create")
	name := fs.String("name", "", "display name of the workspace (default: the slug)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage: parcours bootstrap [--workspace SLUG] [--name NAME]")
	}
	if *name == "" {
		*name = *slug
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	ws, keys, created, err := workspace.NewStore(pool).Bootstrap(ctx, *slug, *name)
	if err != nil {
		return fmt.Errorf("%w (is the schema migrated? run `parcours migrate up` first)", err)
	}
	if !created {
		fmt.Fprintf(stdout, "# Workspace %q already exists; its first keys were printed when it was created.\n# Create more with an admin key: POST /v1/api-keys.\nPARCOURS_WORKSPACE_ID=%s\n", ws.Slug, ws.ID)
		return nil
	}
	fmt.Fprintf(stdout, "# Workspace %q created. These keys are shown this once and stored only as hashes.\n", ws.Slug)
	fmt.Fprintf(stdout, "PARCOURS_WORKSPACE_ID=%s\n", ws.ID)
	for _, k := range keys {
		fmt.Fprintf(stdout, "PARCOURS_%s_KEY=%s\n", strings.ToUpper(string(k.Scope)), k.Secret)
	}
	return nil
}
