package journey_test

import (
	"encoding/json"
	"testing"

	"github.com/parcours/parcours/pkg/journey"
)

// An outcome's text form round-trips, in JSON too, and reads what
// journey_runs.end_reason holds.
func TestOutcomeTextForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    journey.Outcome
		text string
	}{
		{journey.Ended(journey.OutcomeCompleted), "completed"},
		{journey.Ended(journey.OutcomeGoal), "goal"},
		{journey.ExitedOn("Order Completed"), "exited:order_completed"},
		{journey.Outcome{Kind: journey.OutcomeExited, Exit: journey.ExitNoDate}, "exited:no_date"},
		{journey.Ended(journey.OutcomeMerged), "merged"},
		{journey.Ended(journey.OutcomeStillWaiting), "still_waiting"},
	} {
		if got := tc.o.String(); got != tc.text {
			t.Errorf("%+v: text %q, want %q", tc.o, got, tc.text)
		}
		if got := journey.ParseOutcome(tc.text); got != tc.o {
			t.Errorf("parse %q: %+v, want %+v", tc.text, got, tc.o)
		}
		b, err := json.Marshal(struct{ O journey.Outcome }{tc.o})
		if err != nil || string(b) != `{"O":"`+tc.text+`"}` {
			t.Errorf("JSON %s %v", b, err)
		}
		var back struct{ O journey.Outcome }
		if err := json.Unmarshal(b, &back); err != nil || back.O != tc.o {
			t.Errorf("JSON back %+v %v", back.O, err)
		}
	}
	if b, _ := json.Marshal(struct {
		O journey.Outcome `json:"o,omitzero"`
	}{}); string(b) != `{}` {
		t.Errorf("no outcome: %s", b)
	}
}
