package workflows

import (
	"context"
	"time"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/journey"
)

// JourneyActivities is every activity the journey workflow runs, under the
// name it runs it by (the method's name): the one list of them. Three
// implement it and register it whole (RegisterActivity on the value, which
// registers each method under its name): the worker (*activities.Activities,
// worker.Register), the simulator's read-only twins (workflows/simulate) and
// the tests' fake. worker's TestSimulatorStandsInForEveryJourneyActivity
// checks that the simulator and the worker's registry agree on the names.
//
// The workflow calls them through a nil *activities.Activities (var a), as
// the SDK's samples do, so that calls stay type-checked and local
// activities resolve by name in the worker's registry. A call to a method
// missing here compiles, but fails every journey test: the tests register
// only this list.
type JourneyActivities interface {
	// LoadJourneyVersion returns a published version's definition.
	LoadJourneyVersion(context.Context, activities.JourneyVersionInput) (journey.Definition, error)
	// RecordJourneyEntry, RecordJourneyStep, ContinueJourneyRun and
	// RecordJourneyEnd keep journey_runs in step with the run.
	RecordJourneyEntry(context.Context, activities.JourneyEntryInput) error
	RecordJourneyStep(context.Context, activities.JourneyStepInput) error
	ContinueJourneyRun(context.Context, activities.ContinueRunInput) error
	RecordJourneyEnd(context.Context, activities.JourneyEndInput) error
	// EvaluateProfileRule answers a branch condition.
	EvaluateProfileRule(context.Context, activities.ProfileRuleInput) (bool, error)
	// UpdateProfileTraits runs an update_profile node.
	UpdateProfileTraits(context.Context, activities.UpdateTraitsInput) error
	// MatchEvent answers a wait's match, an exit's or the goal's filter.
	MatchEvent(context.Context, activities.MatchEventInput) (bool, error)
	// UntilTimeOfDay and UntilProfileDate answer how long a wait lasts.
	UntilTimeOfDay(context.Context, activities.UntilInput) (time.Duration, error)
	UntilProfileDate(context.Context, activities.UntilDateInput) (activities.UntilDateResult, error)
	// SendMessage runs a send or webhook node through the delivery ledger.
	SendMessage(context.Context, activities.SendMessageInput) (activities.SendMessageResult, error)
	// RecordConversion records the goal, attributed to the last message.
	RecordConversion(context.Context, activities.ConversionInput) error
}

// The worker's activities are the journey's.
var _ JourneyActivities = (*activities.Activities)(nil)
