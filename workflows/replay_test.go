package workflows_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/worker"
	"github.com/parcours/parcours/workflows"
)

// Every recorded history replays against today's workflow code: a change that
// would break runs in flight fails here (use workflow.GetVersion instead,
// and record a history that reaches it: see journeyChanges in journey.go).
// Histories are recorded by api/record_history_test.go and
// api/broadcasts_test.go (PARCOURS_RECORD_HISTORIES=1). Every workflow the
// worker registers has one, and every version change id is reached by one,
// so that the replay guards each of them.
func TestRecordedHistoriesReplay(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	r := sdkworker.NewWorkflowReplayer()
	worker.RegisterWorkflows(r)
	types := map[string]int{}
	changes := map[string]bool{}
	for _, f := range files {
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("replay %s: %v", f, err)
		}
		h := readHistory(t, f)
		types[h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()]++
		for _, id := range versionMarkers(t, h) {
			changes[id] = true
		}
	}
	var registered workflowNames
	worker.RegisterWorkflows(&registered)
	for _, name := range registered {
		if types[name] == 0 {
			t.Errorf("no recorded history of %s in testdata: record one (api/record_history_test.go)", name)
		}
	}
	for _, id := range workflows.JourneyChanges {
		if !changes[id] {
			t.Errorf("no recorded history reaches the journey's change %q: record one that does", id)
		}
	}
}

// R7: a change of workflow logic without versioning makes the replay fail,
// so it cannot reach production unnoticed: for Ping and for the journey.
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
		t.Fatal("a non-deterministic change of Ping replayed without error")
	}
	j := sdkworker.NewWorkflowReplayer()
	// Today's journey plus one timer before it.
	changedJourney := func(ctx workflow.Context, in workflows.JourneyInput) (workflows.JourneyResult, error) {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return workflows.JourneyResult{}, err
		}
		return workflows.Journey(ctx, in)
	}
	j.RegisterWorkflowWithOptions(changedJourney, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
	if err := j.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/journey_cart.json"); err == nil {
		t.Fatal("a non-deterministic change of the journey replayed without error")
	}
}

func readHistory(t *testing.T, path string) *historypb.History {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil || len(h.Events) == 0 {
		t.Fatalf("read %s: %v (%d events)", path, err, len(h.GetEvents()))
	}
	return h
}

// versionMarkers lists the change ids of the GetVersion markers in h.
func versionMarkers(t *testing.T, h *historypb.History) []string {
	t.Helper()
	var ids []string
	for _, ev := range h.Events {
		m := ev.GetMarkerRecordedEventAttributes()
		if m.GetMarkerName() != "Version" {
			continue
		}
		var id string
		if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["change-id"], &id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// workflowNames records the names worker.RegisterWorkflows registers.
type workflowNames []string

func (w *workflowNames) RegisterWorkflow(any) {
	panic("register every workflow under its stable name (RegisterWorkflowWithOptions)")
}

func (w *workflowNames) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	if slices.Contains(*w, o.Name) {
		panic("workflow " + o.Name + " registered twice")
	}
	*w = append(*w, o.Name)
}

func (w *workflowNames) RegisterDynamicWorkflow(any, workflow.DynamicRegisterOptions) {}
