// Package activities holds every side effect Parcours' workflows need:
// database reads and writes, rule evaluation against stored data, sends.
// Activities are idempotent: Temporal runs them at least once.
package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/segment"
)

// Error types workflows may list as non-retryable.
const (
	// ErrTypeNotFound marks a missing workspace, profile or journey: retrying will not make it appear.
	ErrTypeNotFound = "NotFound"
)

// Activities holds the dependencies of every activity. Workflows call its
// methods through a nil *Activities so that calls stay type-checked.
type Activities struct {
	Pool     *pgxpool.Pool
	Segments *segment.Store
	Journeys *journey.Store
	Ingest   *ingest.Store
	// Ledger sends messages through the delivery ledger (SendMessage).
	Ledger *channel.Ledger
}

// CheckWorkspaceInput names the workspace to check.
type CheckWorkspaceInput struct {
	WorkspaceID string
}

// CheckWorkspaceResult is what the database answered.
type CheckWorkspaceResult struct {
	Slug         string
	DatabaseTime time.Time
}

// CheckWorkspace reads a workspace and the database clock.
func (a *Activities) CheckWorkspace(ctx context.Context, in CheckWorkspaceInput) (CheckWorkspaceResult, error) {
	var out CheckWorkspaceResult
	err := a.Pool.QueryRow(ctx, `SELECT slug, now() FROM workspaces WHERE id = $1`, in.WorkspaceID).Scan(&out.Slug, &out.DatabaseTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, temporal.NewNonRetryableApplicationError("workspace "+in.WorkspaceID+" not found", ErrTypeNotFound, nil)
	}
	if err != nil {
		return out, fmt.Errorf("check workspace %s: %w", in.WorkspaceID, err)
	}
	return out, nil
}
