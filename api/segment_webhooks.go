package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/segment"
)

// segmentWebhookRequest is the body of POST /v1/segments/:id/webhooks.
type segmentWebhookRequest struct {
	URL string `json:"url"`
	// Kinds picks the transitions to send: entered, exited (default both).
	Kinds []string `json:"kinds"`
	// SendCurrentMembers also sends an "entered" event for every member the
	// segment has now, so that the receiving tool starts complete.
	SendCurrentMembers bool `json:"send_current_members"`
}

// segmentWebhooks is the webhook store over the API's pool, with the
// channel secret box (nil without PARCOURS_SECRET_KEY).
func (s *Server) segmentWebhooks() *segment.Webhooks {
	var box *channel.Box
	if s.Channels != nil {
		box = s.Channels.Box()
	}
	return segment.NewWebhooks(s.Pool, box)
}

func segmentWebhookProblem(err error) error {
	switch {
	case errors.Is(err, segment.ErrWebhookNotFound):
		return problem(http.StatusNotFound, "No such webhook on this segment.")
	case errors.Is(err, segment.ErrNoSecretKey):
		return problem(http.StatusServiceUnavailable, "This server cannot keep webhook signing secrets: set PARCOURS_SECRET_KEY and restart it.")
	}
	return segmentProblem(err)
}

// segmentAndWebhookIDs reads the path's ids; a malformed one is a 404.
func segmentAndWebhookIDs(c echo.Context) (segID, hookID string, err error) {
	segID, hookID = c.Param("id"), c.Param("webhookId")
	if !isUUID(segID) {
		return "", "", segmentProblem(segment.ErrNotFound)
	}
	if hookID != "" && !isUUID(hookID) {
		return "", "", segmentWebhookProblem(segment.ErrWebhookNotFound)
	}
	return segID, hookID, nil
}

func (s *Server) createSegmentWebhook(c echo.Context) error {
	segID, _, err := segmentAndWebhookIDs(c)
	if err != nil {
		return err
	}
	var req segmentWebhookRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	w, err := s.segmentWebhooks().Create(c.Request().Context(), keyFrom(c).WorkspaceID, segID, segment.WebhookInput{
		URL: req.URL, Kinds: req.Kinds, SendCurrentMembers: req.SendCurrentMembers,
	})
	if err != nil {
		return segmentWebhookProblem(err)
	}
	return c.JSON(http.StatusCreated, w)
}

func (s *Server) listSegmentWebhooks(c echo.Context) error {
	segID, _, err := segmentAndWebhookIDs(c)
	if err != nil {
		return err
	}
	ctx, ws := c.Request().Context(), keyFrom(c).WorkspaceID
	if _, err := s.Segments.Get(ctx, ws, segID); err != nil {
		return segmentProblem(err)
	}
	hooks, err := s.segmentWebhooks().List(ctx, ws, segID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": hooks})
}

func (s *Server) getSegmentWebhook(c echo.Context) error {
	segID, hookID, err := segmentAndWebhookIDs(c)
	if err != nil {
		return err
	}
	w, err := s.segmentWebhooks().Get(c.Request().Context(), keyFrom(c).WorkspaceID, segID, hookID)
	if err != nil {
		return segmentWebhookProblem(err)
	}
	return c.JSON(http.StatusOK, w)
}

func (s *Server) deleteSegmentWebhook(c echo.Context) error {
	segID, hookID, err := segmentAndWebhookIDs(c)
	if err != nil {
		return err
	}
	if err := s.segmentWebhooks().Delete(c.Request().Context(), keyFrom(c).WorkspaceID, segID, hookID); err != nil {
		return segmentWebhookProblem(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// retrySegmentWebhook makes a webhook that is waiting for its next retry
// due now, e.g. once its receiver is fixed.
func (s *Server) retrySegmentWebhook(c echo.Context) error {
	segID, hookID, err := segmentAndWebhookIDs(c)
	if err != nil {
		return err
	}
	w, err := s.segmentWebhooks().Retry(c.Request().Context(), keyFrom(c).WorkspaceID, segID, hookID)
	if err != nil {
		return segmentWebhookProblem(err)
	}
	return c.JSON(http.StatusOK, w)
}
