// Package workflows holds Parcours' Temporal workflows. Everything here is
// deterministic: no I/O, no wall clock, no randomness, no map-order
// dependence. Side effects live in package activities.
package workflows

import (
	"go.temporal.io/sdk/temporal"
)

// DefaultTaskQueue is the task queue the API starts workflows on and the
// worker polls, unless PARCOURS_TASK_QUEUE says otherwise.
const DefaultTaskQueue = "parcours"

// Custom search attributes Parcours sets on its workflows so that runs can be
// found in the Temporal UI (e.g. `ParcoursWorkspace = "..." AND ParcoursJourney = "welcome"`).
// They hold ids only, never personal data: Temporal keeps them in visibility.
var (
	// SAWorkspace is the workspace id a run belongs to.
	SAWorkspace = temporal.NewSearchAttributeKeyKeyword("ParcoursWorkspace")
	// SAJourney is the journey id of a journey run.
	SAJourney = temporal.NewSearchAttributeKeyKeyword("ParcoursJourney")
	// SAProfile is the profile id a journey run is for.
	SAProfile = temporal.NewSearchAttributeKeyKeyword("ParcoursProfile")
	// SAStep is the journey node a run currently sits on.
	SAStep = temporal.NewSearchAttributeKeyKeyword("ParcoursStep")
	// SAVersion is the journey version a run started on.
	SAVersion = temporal.NewSearchAttributeKeyInt64("ParcoursVersion")
)

// SearchAttributes lists every custom search attribute, for registration.
var SearchAttributes = []temporal.SearchAttributeKey{SAWorkspace, SAJourney, SAProfile, SAStep, SAVersion}

// Workflow type names, stable across refactors (they are stored in histories).
const (
	// PingWorkflow is the diagnostic round trip API → Temporal → worker → PostgreSQL.
	PingWorkflow = "parcours.Ping"
)

// PingWorkflowID builds the id of a diagnostic run from its business key.
func PingWorkflowID(workspaceID, requestID string) string {
	return "ping/" + workspaceID + "/" + requestID
}
