package worker_test

import (
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-rpc/sdk-go/nexus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/worker"
	"github.com/parcours/parcours/workflows"
	"github.com/parcours/parcours/workflows/simulate"
)

// The simulator stands in for exactly the journey's activities
// (workflows.JourneyActivities), each registered by the worker under the
// same name with the same signature: the worker's registry, the simulator
// and the tests' fake (which implements the same interface) cannot drift
// apart.
func TestSimulatorStandsInForEveryJourneyActivity(t *testing.T) {
	t.Parallel()
	reg := &registry{activities: map[string]reflect.Type{}}
	worker.Register(reg, &activities.Activities{})

	iface := reflect.TypeFor[workflows.JourneyActivities]()
	var journey []string
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		journey = append(journey, m.Name)
		got, ok := reg.activities[m.Name]
		switch {
		case !ok:
			t.Errorf("the worker registers no activity %s, which the journey runs", m.Name)
		case got != m.Type:
			t.Errorf("the worker registers %s as %v, the journey runs it as %v", m.Name, got, m.Type)
		}
	}
	slices.Sort(journey)
	if sim := simulate.Activities(); !slices.Equal(sim, journey) {
		t.Errorf("the simulator stands in for %v, the journey runs %v", sim, journey)
	}
	if len(reg.workflows) != 4 || !slices.Contains(reg.workflows, workflows.JourneyWorkflow) {
		t.Errorf("workflows registered: %v", reg.workflows)
	}
}

// registry records what worker.Register puts on a worker: activity names
// as the SDK derives them (a struct's exported methods by method name, a
// function by its name) with their signatures, and workflow names.
type registry struct {
	activities map[string]reflect.Type
	workflows  []string
}

func (r *registry) RegisterWorkflow(w any) { r.workflows = append(r.workflows, funcName(w)) }

func (r *registry) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	r.workflows = append(r.workflows, o.Name)
}

func (r *registry) RegisterDynamicWorkflow(any, workflow.DynamicRegisterOptions) {}

func (r *registry) RegisterActivity(a any) {
	r.RegisterActivityWithOptions(a, activity.RegisterOptions{})
}

func (r *registry) RegisterActivityWithOptions(a any, o activity.RegisterOptions) {
	v := reflect.ValueOf(a)
	if v.Kind() == reflect.Func {
		name := o.Name
		if name == "" {
			name = funcName(a)
		}
		r.activities[name] = v.Type()
		return
	}
	for i := range v.NumMethod() {
		r.activities[o.Name+v.Type().Method(i).Name] = v.Method(i).Type()
	}
}

func (r *registry) RegisterDynamicActivity(any, activity.DynamicRegisterOptions) {}

func (r *registry) RegisterNexusService(*nexus.Service) {}

func funcName(f any) string {
	full := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	return strings.TrimSuffix(full[strings.LastIndexByte(full, '.')+1:], "-fm")
}
