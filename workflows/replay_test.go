package workflows_test

import (
	"path/filepath"
	"testing"

	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

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
	r.RegisterWorkflowWithOptions(workflows.Ping, workflow.RegisterOptions{Name: workflows.PingWorkflow})
	r.RegisterWorkflowWithOptions(workflows.SegmentRecompute, workflow.RegisterOptions{Name: workflows.SegmentRecomputeWorkflow})
	r.RegisterWorkflowWithOptions(workflows.Journey, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
	for _, f := range files {
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("replay %s: %v", f, err)
		}
	}
}
