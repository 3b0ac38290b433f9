package soak_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/bench/soak"
	"github.com/parcours/parcours/pkg/pgtest"
)

// TestQuickSoak runs the rig at tiny sizes, as `make test` does, so that it
// never rots: the binary built and run as separate processes, the worker
// killed during the runs' wait (R1: 3 runs, 1 kill) and the Temporal server
// killed with a timer and a send in flight (R6, once), and five seconds of
// hostile bodies on the ingestion endpoints (R12), and 20 seconds of hostile
// sign-ins, rules, templates and partials during a small R20 load with one
// worker kill (R21). Each scenario must hold
// — every run completed, every email sent exactly once, no 5xx — and its
// figures must show the faults really happened.
func TestQuickSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it as separate processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	rep, err := soak.Run(ctx, soak.Config{
		AdminURL: pgtest.AdminURL(),
		Sizes:    soak.Quick,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Version:  "test",
	})
	if err != nil {
		t.Fatalf("start the rig: %v\n%s", err, logs.String())
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", md.String())
	if len(rep.Rows) != 4 {
		t.Fatalf("want R1, R6, R12 and R21, got %d rows", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if !r.Pass() {
			t.Errorf("%s must hold: %s\nlogs kept in %s", r.ID, strings.Join(r.Problems, "; "), rep.RunDir)
		}
		if r.ID == "R12" {
			// Hostile bodies were sent and answered, none with a 5xx.
			if figures := strings.Join(r.Figures, " "); r.Refused != 0 || !strings.Contains(figures, "refused 4xx") || !strings.Contains(figures, ", 0 5xx") {
				t.Errorf("R12: refused %d, figures %q", r.Refused, figures)
			}
			continue
		}
		if r.ID == "R21" {
			// The attacks were sent and answered beside a load that ran.
			figures := strings.Join(r.Figures, " ")
			if !strings.Contains(figures, "hostile requests answered") || !strings.Contains(figures, "sign-in 4") || r.Runs == 0 || r.Kills != 1 {
				t.Errorf("R21: %d runs, %d kills, figures %q", r.Runs, r.Kills, figures)
			}
			continue
		}
		// The faults happened and the figures count real traffic.
		if r.Kills != 1 {
			t.Errorf("%s: %d kills, want 1", r.ID, r.Kills)
		}
		if r.Runs != 3 || r.SendsExpected != 6 || r.SendsSent != 6 || r.SendsDuplicated != 0 {
			t.Errorf("%s: %d runs, sends expected %d sent %d duplicated %d; want 3 runs and 6 emails sent once",
				r.ID, r.Runs, r.SendsExpected, r.SendsSent, r.SendsDuplicated)
		}
		if r.EventsAccepted != 6 || r.EventsStored != 6 {
			t.Errorf("%s: %d events accepted, %d stored; want 6 (an identify and a track per run)", r.ID, r.EventsAccepted, r.EventsStored)
		}
	}
	if _, err := os.Stat(rep.RunDir); err == nil && !t.Failed() {
		t.Errorf("run directory %s left behind after a passing run", rep.RunDir)
	}
}
