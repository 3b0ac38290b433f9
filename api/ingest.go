package api

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/validation"
	"github.com/parcours/parcours/pkg/workspace"
)

// ingestResponse is what Segment libraries expect (they read the status
// only), plus what a person needs: counts, and why records were rejected.
type ingestResponse struct {
	Success    bool `json:"success"`
	Accepted   int  `json:"accepted"`
	Duplicates int  `json:"duplicates"`
	Rejected   int  `json:"rejected"`
	// Records dropped because they name an erased person are counted in
	// Accepted: a write key is public (it sits in web pages), and its
	// holder must not learn that someone was erased.
	Errors []FieldError `json:"errors,omitempty"`
}

// ingestHandler serves one Segment call type ("" for /v1/batch). The key may
// come from the Authorization header (Basic user, as Segment libraries send
// it, or Bearer) or from writeKey in the body, so the handler authenticates
// itself after reading the body.
//
// A 2xx answer means every accepted record is committed. Invalid records are
// kept in quarantine with their reason: a single call answers 400, a batch
// stores its valid records and lists the rejected ones in a 200 answer (a 400
// would make Segment libraries drop the whole batch, valid records included).
func (s *Server) ingestHandler(typ string) echo.HandlerFunc {
	return func(c echo.Context) error {
		receivedAt := time.Now().UTC()
		body, err := readBody(c.Request(), events.MaxBatchBytes)
		if err != nil {
			return err
		}
		var (
			msgs     []events.Message
			rejected []events.Rejected
			writeKey string
		)
		if typ == "" {
			msgs, rejected, writeKey, err = events.ParseBatch(body, receivedAt)
		} else {
			var m events.Message
			m, err = events.ParseSingle(body, typ, receivedAt)
			if err == nil {
				msgs, writeKey = []events.Message{m}, m.WriteKey
			} else if pe := (*events.Error)(nil); errors.As(err, &pe) && pe.Status == http.StatusBadRequest {
				rejected, writeKey, err = []events.Rejected{{Err: pe, Raw: body}}, bodyWriteKey(body), nil
			}
		}
		// Authenticate before reporting what is wrong: strangers learn nothing.
		secret := credential(c.Request())
		if secret == "" {
			secret = writeKey
		}
		k, authErr := s.authenticate(c, secret, workspace.ScopeWrite)
		if authErr != nil {
			return authErr
		}
		// The key's rate, counted in records (at least one a request):
		// past it nothing of the request is stored, not even in quarantine.
		if ok, wait := s.WriteKeyLimit.Take(k.ID, len(msgs)+len(rejected), time.Now()); !ok {
			return s.rateLimited(c, wait)
		}
		if err != nil { // the envelope is unusable (or too large): nothing to keep
			var pe *events.Error
			if errors.As(err, &pe) {
				p := problem(pe.Status, "The request was rejected and nothing was stored: "+pe.Error())
				p.Type = typeValidation
				p.Errors = []FieldError{{Field: pe.Field, Reason: pe.Reason}}
				return p
			}
			return err
		}
		source := k.Source
		if source == "" {
			source = "api" // an admin key ingesting: no named source
		}
		// The workspace's validation rules accept or reject each record.
		if s.Validation != nil && len(msgs) > 0 {
			rules, err := s.Validation.Enabled(c.Request().Context(), k.WorkspaceID)
			if err != nil {
				return err
			}
			if len(rules) > 0 {
				valid := msgs[:0:0]
				for i := range msgs {
					if reason := validation.Check(rules, &msgs[i], source); reason != "" {
						rejected = append(rejected, events.Rejected{Raw: msgs[i].Raw, Err: &events.Error{Index: msgs[i].Index, Field: "rule", Reason: reason, Status: http.StatusBadRequest}})
						continue
					}
					valid = append(valid, msgs[i])
				}
				msgs = valid
			}
		}
		// One person's records a minute: those over the cap are kept in
		// quarantine, where a marketer replays them once the burst is over.
		if s.ProfileCap != nil && len(msgs) > 0 {
			now := time.Now()
			admitted := msgs[:0:0]
			for i := range msgs {
				if ok, field := s.ProfileCap.Admit(k.WorkspaceID, &msgs[i], now); !ok {
					rejected = append(rejected, events.Rejected{Raw: msgs[i].Raw, Err: &events.Error{Index: msgs[i].Index, Field: field,
						Reason: profileCapReason(s.ProfileCap.PerMinute(), field), Status: http.StatusBadRequest}})
					continue
				}
				admitted = append(admitted, msgs[i])
			}
			msgs = admitted
		}
		rejects := make([]ingest.Rejection, len(rejected))
		fieldErrs := make([]FieldError, len(rejected))
		for i, r := range rejected {
			field := r.Err.Field
			if r.Err.Index >= 0 {
				field = fmt.Sprintf("batch[%d].%s", r.Err.Index, r.Err.Field)
			}
			rejects[i] = ingest.Rejection{CallType: typ, Field: field, Reason: r.Err.Reason, Raw: r.Raw, ReceivedAt: receivedAt}
			fieldErrs[i] = FieldError{Field: field, Reason: r.Err.Reason}
		}
		origin := ingest.Origin{WorkspaceID: k.WorkspaceID, KeyID: k.ID, Source: source, Journeys: true}
		var res ingest.Result
		if typ != "" && s.GroupCommit != nil {
			res, err = s.GroupCommit.Ingest(c.Request().Context(), origin, msgs, rejects)
		} else {
			res, err = s.Ingest.Ingest(c.Request().Context(), origin, msgs, rejects)
		}
		if err != nil {
			return err
		}
		if res.Suppressed > 0 { // answered as accepted: this log is where they show
			s.logger.DebugContext(c.Request().Context(), "records about erased people dropped", "workspace_id", k.WorkspaceID, "records", res.Suppressed)
		}
		// Real-time segments: only those the records can change. The records
		// are committed already; should this fail, the scheduled sweep
		// catches up, so it is logged, not returned.
		if s.Segments != nil {
			moves, err := s.Segments.RefreshForJourneys(c.Request().Context(), k.WorkspaceID, res.Changes, time.Now().UTC())
			if err != nil {
				s.logger.ErrorContext(c.Request().Context(), "real-time segment update failed", "err", err)
			}
			if err := s.triggerSegmentJourneys(c.Request().Context(), k.WorkspaceID, moves.Moves); err != nil {
				s.logger.ErrorContext(c.Request().Context(), "segment-triggered journeys failed", "err", err)
			}
		}
		if err := s.reconcileMerges(c.Request().Context(), k.WorkspaceID, res.Changes); err != nil {
			s.logger.ErrorContext(c.Request().Context(), "journey reconciliation after a merge failed", "err", err)
		}
		if err := s.triggerJourneys(c.Request().Context(), k.WorkspaceID, res.Stored); err != nil {
			s.logger.ErrorContext(c.Request().Context(), "journey trigger failed", "err", err)
		}
		if typ != "" && len(rejected) > 0 {
			p := invalid("The record was rejected and kept in quarantine (GET /v1/rejected): "+rejected[0].Err.Reason, fieldErrs...)
			p.Status, p.Title = http.StatusBadRequest, "Record rejected"
			return p
		}
		return c.JSON(http.StatusOK, ingestResponse{
			Success: true, Accepted: res.Accepted + res.Suppressed, Duplicates: res.Duplicates,
			Rejected: len(rejected), Errors: fieldErrs,
		})
	}
}

// rateLimited answers 429: the write key sent more than its rate.
func (s *Server) rateLimited(c echo.Context, wait time.Duration) error {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return problem(http.StatusTooManyRequests, fmt.Sprintf(
		"This write key sent more than %d records a second (bursts up to %d): nothing of this request was stored. "+
			"Send it again in %d s (Segment libraries retry by themselves), or spread the load over more write keys. "+
			"The limit is the server's PARCOURS_WRITE_KEY_RATE and PARCOURS_WRITE_KEY_BURST.",
		s.WriteKeyLimit.Rate(), s.WriteKeyLimit.Burst(), secs))
}

// profileCapReason is the quarantine's reason for a record over the cap of
// records a person may bring a minute. It names the identifier's type, never
// its value (a reason is shown to viewers).
func profileCapReason(perMinute int, field string) string {
	return fmt.Sprintf("more than %d records a minute came for this person (the same %s): kept here, not stored; "+
		"replay it once the burst is over (the cap is the server's PARCOURS_PROFILE_EVENT_RATE)", perMinute, field)
}

// bodyWriteKey digs writeKey out of a body that failed validation.
func bodyWriteKey(body []byte) string {
	var b struct {
		WriteKey string `json:"writeKey"`
	}
	_ = json.Unmarshal(body, &b)
	return b.WriteKey
}

// authenticate checks a secret and its scope, and remembers the key.
func (s *Server) authenticate(c echo.Context, secret string, want workspace.Scope) (workspace.Key, error) {
	if secret == "" {
		return workspace.Key{}, unauthorized("This endpoint needs a write key: send it as the HTTP Basic user name (as Segment libraries do), as `Authorization: Bearer <key>`, or as writeKey in the body.")
	}
	k, err := s.keys.authenticate(c.Request().Context(), secret)
	switch {
	case errors.Is(err, workspace.ErrInvalidKey):
		return k, unauthorized("The API key is not valid. Check it was copied whole, or create a new one.")
	case errors.Is(err, workspace.ErrRevokedKey):
		return k, unauthorized("The API key was revoked. Ask a workspace admin for a new one.")
	case err != nil:
		return k, err
	}
	if !k.Scope.Allows(want) {
		return k, problem(http.StatusForbidden, "This API key has the "+string(k.Scope)+" scope; this endpoint needs "+article(string(want))+" "+string(want)+" key.")
	}
	c.Set(ctxKey, k)
	return k, nil
}

// readBody reads at most limit bytes, transparently gunzipping.
func readBody(r *http.Request, limit int) ([]byte, error) {
	var rd io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, problem(http.StatusBadRequest, "The body says it is gzip-compressed but is not: "+err.Error())
		}
		defer gz.Close()
		rd = gz
	}
	body, err := io.ReadAll(io.LimitReader(rd, int64(limit)+1))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, problem(http.StatusRequestEntityTooLarge, "The request body is larger than this server accepts.")
		}
		return nil, problem(http.StatusBadRequest, "The body could not be read: "+err.Error())
	}
	if len(body) > limit {
		return nil, problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("The body is larger than %d KB, the most a batch may be: send smaller batches.", limit/1024))
	}
	if len(body) == 0 {
		return nil, problem(http.StatusBadRequest, "The request body is empty; send a JSON object.")
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8. Decoding already reads a stray byte as U+FFFD; the
		// body kept as received says the same, so that the record is stored
		// (PostgreSQL refuses invalid UTF-8) rather than lost.
		body = []byte(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
	return storableEscapes(body), nil
}

func article(w string) string {
	if strings.ContainsRune("aeiou", rune(w[0])) {
		return "an"
	}
	return "a"
}
