package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/pgtest"
)

// TestDemoCommand: `parcours demo --workspace SLUG` fills that workspace and
// says what it holds; a second run says nothing was added; a workspace that
// does not exist is named, with how to create it.
func TestDemoCommand(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	getenv := func(k string) string {
		switch k {
		case "DATABASE_URL":
			return dbURL
		case "PARCOURS_DATA_DIR":
			return t.TempDir()
		}
		return ""
	}
	ctx := context.Background()
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"demo", "--workspace", "shop"}, &out, &errOut, getenv)
	if err == nil || !strings.Contains(err.Error(), `no workspace "shop"`) || !strings.Contains(err.Error(), "parcours bootstrap --workspace shop") {
		t.Fatalf("demo into a missing workspace: %v", err)
	}
	if err := run(ctx, []string{"bootstrap", "--workspace", "shop"}, &out, &errOut, getenv); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"demo", "--workspace", "shop"}, &out, &errOut, getenv); err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{`Demo data loaded into workspace "shop"`, "200 in the workspace: 70 anonymous, 70 known, 60 omnichannel",
		"Abandoned carts:", "Welcome new sign-ups (demo): live (created)", "7 created"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("first run does not say %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(ctx, []string{"demo", "--workspace", "shop"}, &out, &errOut, getenv); err != nil {
		t.Fatalf("second demo: %v", err)
	}
	for _, want := range []string{`already in workspace "shop": nothing was added`, "0 stored now", "200 in the workspace"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("second run does not say %q:\n%s", want, out.String())
		}
	}
}
