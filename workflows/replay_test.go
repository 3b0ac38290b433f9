package workflows_test

import (
	"path/filepath"
	"testing"
	"time"

	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/worker"
	"github.com/parcours/parcours/workflows"
)

// Every recorded history replays against today's workflow code: a change that
// would break runs in flight fails here (use workflow.GetVersion instead).
// Histories are recorded by api/record_history_test.go.
func TestRecordedHistoriesReplay(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d recorded histories, want at least 2", len(files))
	}
	r := sdkworker.NewWorkflowReplayer()
	worker.RegisterWorkflows(r)
	for _, f := range files {
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("replay %s: %v", f, err)
		}
	}
}

// R7: a change of workflow logic without versioning makes the replay fail,
// so it cannot reach production unnoticed.
func TestReplayCatchesAnUnversionedChange(t *testing.T) {
	t.Parallel()
	r := sdkworker.NewWorkflowReplayer()
	// Today's Ping plus one timer before it, registered under Ping's name.
	changed := func(ctx workflow.Context, in workflows.PingInput) (workflows.PingResult, error) {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return workflows.PingResult{}, err
		}
		return workflows.Ping(ctx, in)
	}
	r.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: workflows.PingWorkflow})
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/ping.json"); err == nil {
		t.Fatal("a non-deterministic change replayed without error")
	}
}
