package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parcours/parcours/pkg/addrhash"
	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/config"
	"github.com/parcours/parcours/pkg/demo"
	"github.com/parcours/parcours/pkg/devserver"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/workspace"
)

// runDemo loads the demo shop (pkg/demo) into a workspace of the database
// `parcours dev` uses: about 200 people from the website, the shops and the
// call centre, a week of their records, segments, and the four scenario
// journeys, published. Running it again adds nothing.
//
// It needs PostgreSQL only: the journeys are published, and runs start when
// `parcours dev` (or the API and worker) receive new records.
func runDemo(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	slug := fs.String("workspace", "default", "slug of the workspace to fill (default: the one `parcours dev` creates)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL (DATABASE_URL)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "local state directory of `parcours dev` (PARCOURS_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage: parcours demo [--workspace SLUG] [--database-url URL]")
	}
	// The database `parcours dev` would use: DATABASE_URL, or its private
	// cluster when no server answers there.
	pg, err := devserver.EnsurePostgres(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return fmt.Errorf("%w\n(while `parcours dev` runs on its private PostgreSQL cluster, load the demo from the console instead: Overview, Load demo data)", err)
	}
	defer stopLogged(newLogger(cfg, stderr), "PostgreSQL", pg.Stop)
	pool, err := openPool(ctx, pg.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	ws, err := workspace.NewStore(pool).BySlug(ctx, *slug)
	if errors.Is(err, workspace.ErrNotFound) {
		return fmt.Errorf("there is no workspace %q in this database: start `parcours dev` once (it creates \"default\"), or create it with `parcours bootstrap --workspace %s`", *slug, *slug)
	}
	if err != nil {
		return fmt.Errorf("find workspace %q: %w (is the schema migrated? run `parcours migrate up` first)", *slug, err)
	}
	l := demo.New(pool)
	// Records of people erased since are recognised with the server's key:
	// PARCOURS_SECRET_KEY, else the one `parcours dev` keeps.
	secret := cfg.SecretKey
	if secret == nil {
		if raw, err := os.ReadFile(filepath.Join(cfg.DataDir, secretKeyFile)); err == nil {
			secret, _ = channel.ParseKey(string(raw))
		}
	}
	l.Ingest = ingest.NewStore(pool).WithHashes(addrhash.New(secret))
	res, err := l.Load(ctx, ws.ID, time.Now())
	if err != nil {
		return err
	}
	printDemo(stdout, ws, res)
	return nil
}

// sourceLabels name the demo's sources for people.
var sourceLabels = map[string]string{demo.SourceWeb: "website", demo.SourceStore: "shops", demo.SourceCallCentre: "call centre"}

func printDemo(w io.Writer, ws workspace.Workspace, r demo.Result) {
	if r.Added() {
		fmt.Fprintf(w, "Demo data loaded into workspace %q: Lumen & Co, a homeware shop, seen from %s to %s.\n",
			ws.Slug, r.FirstEventAt.Local().Format("Mon 2 Jan 15:04"), r.LastEventAt.Local().Format("Mon 2 Jan 15:04"))
	} else {
		fmt.Fprintf(w, "The demo data was already in workspace %q: nothing was added.\n", ws.Slug)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var bySource []string
	for _, src := range []string{demo.SourceWeb, demo.SourceStore, demo.SourceCallCentre} {
		bySource = append(bySource, fmt.Sprintf("%s %d", sourceLabels[src], r.BySource[src]))
	}
	fmt.Fprintf(tw, "  Records\t%d stored now (%s), %d already there\n", r.Accepted, strings.Join(bySource, ", "), r.Duplicates)
	if r.Rejected > 0 {
		fmt.Fprintf(tw, "  Refused\t%d by the workspace's validation rules, kept in quarantine (GET /v1/rejected)\n", r.Rejected)
	}
	fmt.Fprintf(tw, "  Newsletter\t%d opens and clicks stored now\n", r.EmailEvents)
	fmt.Fprintf(tw, "  Merges\t%d profiles found to be the same person and merged\n", r.Merges)
	total := r.Profiles["anonymous"] + r.Profiles["known"] + r.Profiles["omnichannel"]
	fmt.Fprintf(tw, "  Profiles\t%d in the workspace: %d anonymous, %d known, %d omnichannel\n",
		total, r.Profiles["anonymous"], r.Profiles["known"], r.Profiles["omnichannel"])
	for i, s := range r.Segments {
		label := ""
		if i == 0 {
			label = "Segments"
		}
		fmt.Fprintf(tw, "  %s\t%s: %d members%s\n", label, s.Name, s.Members, createdOrKept(s.Created))
	}
	for i, j := range r.Journeys {
		label := ""
		if i == 0 {
			label = "Journeys"
		}
		fmt.Fprintf(tw, "  %s\t%s: %s%s\n", label, j.Name, j.Status, createdOrKept(j.Created))
	}
	var created []string
	for _, t := range r.Templates {
		if t.Created {
			created = append(created, t.Name)
		}
	}
	if len(created) > 0 {
		fmt.Fprintf(tw, "  Templates\t%d created (%s), %d kept\n", len(created), strings.Join(created, ", "), len(r.Templates)-len(created))
	} else {
		fmt.Fprintf(tw, "  Templates\tthe %d the journeys send were there already, kept\n", len(r.Templates))
	}
	tw.Flush()
	fmt.Fprintln(w, "Open the console's Overview to explore them. New records sent to the API now start the journeys.")
}

func createdOrKept(created bool) string {
	if created {
		return " (created)"
	}
	return " (already there, kept)"
}
