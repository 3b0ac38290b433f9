package journey

import "strings"

// OutcomeKind is the kind of way a run ended.
type OutcomeKind string

// Outcome kinds. The journey workflow ends a run completed, exited or at
// its goal; the API ends runs removed, merged or erased; a simulation
// stopped at its horizon is still waiting.
const (
	// OutcomeCompleted: the run reached an exit node (or a node with no next).
	OutcomeCompleted OutcomeKind = "completed"
	// OutcomeExited: an exit criterion matched a record (Outcome.Exit names
	// its event), or a date wait found no date and had no on_missing
	// (Exit is ExitNoDate).
	OutcomeExited OutcomeKind = "exited"
	// OutcomeGoal: a record reached the goal; a conversion is recorded.
	OutcomeGoal OutcomeKind = "goal"
	// OutcomeRemoved: stopped by hand (the API).
	OutcomeRemoved OutcomeKind = "removed"
	// OutcomeMerged: the profile was merged into one that was already in
	// the journey.
	OutcomeMerged OutcomeKind = "merged"
	// OutcomeErased: the profile was erased.
	OutcomeErased OutcomeKind = "erased"
	// OutcomeStillWaiting: not an end: the run was still waiting when a
	// simulation stopped.
	OutcomeStillWaiting OutcomeKind = "still_waiting"
)

// ExitNoDate is the Exit of a run whose date wait found no date and had
// nowhere else to go.
const ExitNoDate = "no_date"

// Outcome says how a run ended. Its text form (String, MarshalText) is what
// journey_runs.end_reason stores and the JSON API answers: the kind, and for
// an exit "exited:" and the event in snake case, e.g. exited:order_completed.
type Outcome struct {
	Kind OutcomeKind
	// Exit is, for OutcomeExited, the exit criterion's event in lower snake
	// case (order_completed), or ExitNoDate.
	Exit string
}

// Ended is an outcome of kind k with no exit.
func Ended(k OutcomeKind) Outcome { return Outcome{Kind: k} }

// ExitedOn is the outcome of an exit criterion on event.
func ExitedOn(event string) Outcome {
	return Outcome{Kind: OutcomeExited, Exit: strings.ToLower(strings.ReplaceAll(event, " ", "_"))}
}

// ParseOutcome reads an outcome's text form. Text it does not know is kept
// as the kind, so nothing recorded is lost.
func ParseOutcome(s string) Outcome {
	if exit, ok := strings.CutPrefix(s, string(OutcomeExited)+":"); ok {
		return Outcome{Kind: OutcomeExited, Exit: exit}
	}
	return Outcome{Kind: OutcomeKind(s)}
}

// String is the outcome's text form.
func (o Outcome) String() string {
	if o.Kind == OutcomeExited {
		return string(o.Kind) + ":" + o.Exit
	}
	return string(o.Kind)
}

// IsZero says whether o is no outcome (a run not entered or not ended).
func (o Outcome) IsZero() bool { return o == Outcome{} }

// MarshalText writes the text form, so that JSON (the API, Temporal's
// payloads) carries "exited:order_completed", not an object.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads the text form.
func (o *Outcome) UnmarshalText(b []byte) error {
	*o = ParseOutcome(string(b))
	return nil
}
