package api

import (
	"bytes"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/rules"
	"github.com/parcours/parcours/pkg/user"
)

// The segment editor checks the rule as the marketer types: its script
// (web/assets/segments.js) posts the rule, a moment after the last key, to
// POST /segments/check, and shows the answer under the editor. The answer
// is an HTML fragment drawn by the same templates as the page after a
// Preview or a Save, so that the error reads the same with or without the
// script.

// liveSampleSize is how many matching profiles the live check names: a
// glance, not the Preview's list.
const liveSampleSize = 5

// ruleCheckData is the fragment's data: the rule's error, or what it
// selects now.
type ruleCheckData struct {
	RuleError *ruleError
	Live      *previewData
}

// checkSegmentRule answers the editor's script with the rule's error at its
// line and column, or how many profiles it selects now and a few of them.
// It saves nothing, so viewers may check too. A rule that does not compile
// is a normal answer (200): the check worked, the rule is wrong.
func (s *Server) checkSegmentRule(c echo.Context, sess user.Session) error {
	ctx := c.Request().Context()
	rule := crlf.Replace(c.FormValue("rule"))
	var d ruleCheckData
	res, err := s.Segments.Preview(ctx, sess.User.WorkspaceID, rule, time.Now().UTC(), liveSampleSize)
	var re *rules.Error
	switch {
	case errors.As(err, &re):
		d.RuleError = newRuleError(rule, re)
	case err != nil && ctx.Err() != nil:
		// The script gave up on this check (the marketer typed on): nobody
		// reads the answer, and it is not a failure worth logging.
		return nil
	case err != nil:
		return err
	default:
		d.Live = &previewData{Count: res.Count, Scanned: res.Scanned}
		for _, id := range res.Sample {
			card, err := s.profileCard(ctx, sess.User.WorkspaceID, id)
			if err != nil {
				return err
			}
			d.Live.Sample = append(d.Live.Sample, card)
		}
	}
	var buf bytes.Buffer
	if err := consolePages["segment.html"].ExecuteTemplate(&buf, "rule-check", d); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}
