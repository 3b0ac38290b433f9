package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/broadcast"
	"github.com/parcours/parcours/pkg/trigger"
	"github.com/parcours/parcours/workflows"
)

// broadcastRequest is the body of POST /v1/broadcasts.
type broadcastRequest struct {
	Name     string           `json:"name"`
	Segment  string           `json:"segment"`
	Template string           `json:"template"`
	Channel  string           `json:"channel"`
	Class    string           `json:"class"`
	Schedule *scheduleRequest `json:"schedule"`
}

// scheduleRequest is when: {"at": RFC 3339} once, {"cron", "timezone"}
// recurring; absent, at once.
type scheduleRequest struct {
	At       string `json:"at"`
	Cron     string `json:"cron"`
	Timezone string `json:"timezone"`
}

// broadcastView is a broadcast as the API shows it: each occurrence with a
// link to its run in the Temporal UI and, while it runs, the workflow's
// own progress (its query handler).
type broadcastView struct {
	broadcast.Broadcast
	Occurrences []occurrenceView `json:"occurrences"`
}

type occurrenceView struct {
	broadcast.Occurrence
	TemporalUIURL string                       `json:"temporal_ui_url,omitempty"`
	Progress      *workflows.BroadcastProgress `json:"progress,omitempty"`
}

func broadcastProblem(err error) error {
	var fe *broadcast.FieldError
	switch {
	case errors.As(err, &fe):
		return invalid("The broadcast cannot be saved.", FieldError{Field: fe.Field, Reason: fe.Reason})
	case errors.Is(err, broadcast.ErrNotFound):
		return problem(http.StatusNotFound, "No such broadcast in this workspace.")
	case errors.Is(err, broadcast.ErrFinished):
		return problem(http.StatusConflict, "This broadcast already finished; there is nothing left to cancel.")
	}
	return err
}

func (s *Server) broadcasts() *broadcast.Store { return broadcast.NewStore(s.Pool) }

func (s *Server) createBroadcast(c echo.Context) error {
	var req broadcastRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in := broadcast.Input{Name: req.Name, Segment: req.Segment, Template: req.Template, Channel: req.Channel, Class: req.Class}
	if sr := req.Schedule; sr != nil {
		in.Schedule = &broadcast.Schedule{Cron: strings.TrimSpace(sr.Cron), Timezone: strings.TrimSpace(sr.Timezone)}
		if sr.At != "" {
			at, err := time.Parse(time.RFC3339, sr.At)
			if err != nil {
				return invalid("The broadcast cannot be saved.", FieldError{Field: "schedule.at", Reason: "must be an RFC 3339 time with its offset, e.g. 2025-11-28T09:00:00+01:00"})
			}
			in.Schedule.At = &at
		}
	}
	if s.Temporal == nil {
		return problem(http.StatusServiceUnavailable, "Broadcasts need Temporal, which this server is not connected to.")
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	now := time.Now()
	b, err := s.broadcasts().Create(ctx, ws, in, now)
	if err != nil {
		return broadcastProblem(err)
	}
	if err := trigger.ScheduleBroadcast(ctx, s.Temporal, s.TaskQueue, ws, b, now); err != nil {
		// Not scheduled: the broadcast would never send, so it is not kept.
		if derr := s.broadcasts().Delete(context.WithoutCancel(ctx), ws, b.ID); derr != nil {
			s.logger.ErrorContext(ctx, "could not remove a broadcast Temporal refused", "broadcast", b.ID, "err", derr)
		}
		if errors.Is(err, trigger.ErrBadCron) {
			return invalid("Temporal cannot run this schedule.", FieldError{Field: "schedule.cron", Reason: err.Error()})
		}
		return err
	}
	return c.JSON(http.StatusCreated, s.viewBroadcast(ctx, ws, b))
}

func (s *Server) listBroadcasts(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1, 500)
	if err != nil {
		return err
	}
	bs, err := s.broadcasts().List(c.Request().Context(), keyFrom(c).WorkspaceID, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": bs})
}

func (s *Server) getBroadcast(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return broadcastProblem(broadcast.ErrNotFound)
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	b, err := s.broadcasts().Get(ctx, ws, id)
	if err != nil {
		return broadcastProblem(err)
	}
	return c.JSON(http.StatusOK, s.viewBroadcast(ctx, ws, b))
}

// cancelBroadcast stops a broadcast: the status in the database stops every
// batch not yet started; Temporal's schedule is deleted and runs cancelled.
func (s *Server) cancelBroadcast(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return broadcastProblem(broadcast.ErrNotFound)
	}
	ctx := c.Request().Context()
	ws := keyFrom(c).WorkspaceID
	b, running, err := s.broadcasts().Cancel(ctx, ws, id)
	if err != nil {
		return broadcastProblem(err)
	}
	if s.Temporal != nil {
		if err := trigger.CancelBroadcast(ctx, s.Temporal, ws, b, running); err != nil {
			// The database status already stops every send; this is tidying.
			s.logger.WarnContext(ctx, "broadcast cancelled, but Temporal could not be told", "broadcast", id, "err", err)
		}
	}
	if b, err = s.broadcasts().Get(ctx, ws, id); err != nil {
		return broadcastProblem(err)
	}
	return c.JSON(http.StatusOK, s.viewBroadcast(ctx, ws, b))
}

func (s *Server) viewBroadcast(ctx context.Context, ws string, b broadcast.Broadcast) broadcastView {
	v := broadcastView{Broadcast: b, Occurrences: make([]occurrenceView, len(b.Occurrences))}
	for i, o := range b.Occurrences {
		v.Occurrences[i] = occurrenceView{Occurrence: o, TemporalUIURL: s.runURL(o.WorkflowID, o.RunID)}
		if o.Status != broadcast.OccurrenceRunning || s.Temporal == nil {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res, err := s.Temporal.QueryWorkflow(qctx, o.WorkflowID, "", workflows.BroadcastProgressQuery)
		var p workflows.BroadcastProgress
		if err == nil && res.Get(&p) == nil {
			v.Occurrences[i].Progress = &p
		}
		cancel()
	}
	return v
}
