package workflows_test

import (
	"context"
	"sync"
	"time"

	"github.com/parcours/parcours/activities"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/workflows"
)

// fakeJourney is the tests' implementation of workflows.JourneyActivities,
// registered whole (RegisterActivity) as the worker registers its own, so
// that a journey calling an activity missing from the list fails here.
// Bookkeeping succeeds; each answer can be set; what the run did is kept.
// Activities run on goroutines of their own: mu guards what they keep.
type fakeJourney struct {
	def journey.Definition
	// customer is what branch conditions answer; matches what MatchEvent
	// answers by record id (unless match is set); timeOfDay and date what
	// the waits last; send, when set, answers SendMessage.
	customer  bool
	matches   map[int64]bool
	match     func(activities.MatchEventInput) bool
	timeOfDay time.Duration
	date      activities.UntilDateResult
	send      func(context.Context, activities.SendMessageInput) (activities.SendMessageResult, error)

	mu sync.Mutex
	// sent are the templates of the messages, messages the sends asked.
	sent        []string
	messages    []activities.SendMessageInput
	traits      []map[string]any
	conversions []activities.ConversionInput
	continued   []activities.ContinueRunInput
	ends        []activities.JourneyEndInput
}

var _ workflows.JourneyActivities = (*fakeJourney)(nil)

func newFakeJourney(def journey.Definition) *fakeJourney {
	return &fakeJourney{def: def, matches: map[int64]bool{}, timeOfDay: 3 * time.Hour}
}

func (f *fakeJourney) LoadJourneyVersion(context.Context, activities.JourneyVersionInput) (journey.Definition, error) {
	return f.def, nil
}

func (f *fakeJourney) RecordJourneyEntry(context.Context, activities.JourneyEntryInput) error {
	return nil
}

func (f *fakeJourney) RecordJourneyStep(context.Context, activities.JourneyStepInput) error {
	return nil
}

func (f *fakeJourney) ContinueJourneyRun(_ context.Context, in activities.ContinueRunInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.continued = append(f.continued, in)
	return nil
}

func (f *fakeJourney) RecordJourneyEnd(_ context.Context, in activities.JourneyEndInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends = append(f.ends, in)
	return nil
}

func (f *fakeJourney) EvaluateProfileRule(context.Context, activities.ProfileRuleInput) (bool, error) {
	return f.customer, nil
}

func (f *fakeJourney) UpdateProfileTraits(_ context.Context, in activities.UpdateTraitsInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.traits = append(f.traits, in.Traits)
	return nil
}

func (f *fakeJourney) MatchEvent(_ context.Context, in activities.MatchEventInput) (bool, error) {
	if f.match != nil {
		return f.match(in), nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.matches[in.EventID], nil
}

func (f *fakeJourney) UntilTimeOfDay(context.Context, activities.UntilInput) (time.Duration, error) {
	return f.timeOfDay, nil
}

func (f *fakeJourney) UntilProfileDate(context.Context, activities.UntilDateInput) (activities.UntilDateResult, error) {
	return f.date, nil
}

func (f *fakeJourney) SendMessage(ctx context.Context, in activities.SendMessageInput) (activities.SendMessageResult, error) {
	f.mu.Lock()
	f.sent = append(f.sent, in.TemplateSlug)
	f.messages = append(f.messages, in)
	f.mu.Unlock()
	if f.send != nil {
		return f.send(ctx, in)
	}
	return activities.SendMessageResult{Status: "sent"}, nil
}

func (f *fakeJourney) RecordConversion(_ context.Context, in activities.ConversionInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conversions = append(f.conversions, in)
	return nil
}
