// Package api is Parcours' HTTP API, built on Echo: the route table, the
// handlers, authentication by API key, and the one error handler that answers
// every failure as application/problem+json.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/devmail"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/user"
	"github.com/parcours/parcours/pkg/validation"
	"github.com/parcours/parcours/pkg/workspace"
)

// Deps is what the API needs from the process that runs it.
type Deps struct {
	Pool       *pgxpool.Pool
	Workspaces *workspace.Store
	Ingest     *ingest.Store
	// GroupCommit, when set, commits concurrent single calls together
	// (one WAL flush for many); batches use Ingest directly.
	GroupCommit *ingest.GroupCommitter
	Profiles    *profile.Store
	Validation  *validation.Store
	Segments    *segment.Store
	Journeys    *journey.Store
	// Channels keeps channel settings and consent; Templates the Liquid
	// templates; Ledger sends through the delivery ledger.
	Channels  *channel.Store
	Templates *template.Store
	Ledger    *channel.Ledger
	Temporal  client.Client
	// Users signs people in to the console. Default: a store over Pool.
	Users *user.Store
	// SignIn throttles sign-in attempts per account and per client
	// address. Default: user.NewThrottle with the documented limits.
	SignIn *user.Throttle
	// TrustProxy believes X-Forwarded-For and X-Forwarded-Proto sent by
	// proxies on loopback or private addresses (PARCOURS_TRUST_PROXY).
	// Otherwise the connection's own address and scheme count, whatever the
	// headers say: for sign-in throttling, Secure cookies and HSTS.
	TrustProxy bool
	// TaskQueue the worker polls.
	TaskQueue string
	// Namespace journeys run in, for Temporal UI links.
	Namespace string
	// TemporalUIURL is the Web UI base URL for links to runs; "" omits links.
	TemporalUIURL string
	Logger        *slog.Logger
	// BodyLimit caps request bodies, in Echo's syntax (e.g. "1M"). Default 1M.
	BodyLimit string
	// RequestTimeout is each request's deadline. Default 30s.
	RequestTimeout time.Duration
	// Version is reported by /healthz.
	Version string
	// WriteKeyLimit bounds the records each write key may send a second
	// (429 past it); nil: no limit. ProfileCap bounds the records one
	// userId or anonymousId may bring a minute (those over it are kept in
	// quarantine); nil: no cap.
	WriteKeyLimit *ingest.KeyLimiter
	ProfileCap    *ingest.ProfileCap
	// DevMailbox, in `parcours dev` only, is the fake SendGrid served at
	// /dev/sendgrid and shown on the console's Mailbox page.
	DevMailbox *devmail.Mailbox
}

// Server is the HTTP API.
type Server struct {
	Deps
	echo    *echo.Echo
	logger  *slog.Logger
	keys    *keyCache
	metrics *httpMetrics
	// Registry holds the process's Prometheus metrics, served at /metrics.
	Registry *prometheus.Registry
	// imports are the bulk imports running in the background.
	imports importJobs
}

// New builds the API with its middleware and route table.
func New(d Deps) *Server {
	if d.BodyLimit == "" {
		d.BodyLimit = "1M"
	}
	if d.RequestTimeout == 0 {
		d.RequestTimeout = 30 * time.Second
	}
	if d.Users == nil && d.Pool != nil {
		d.Users = user.NewStore(d.Pool)
	}
	if d.SignIn == nil {
		d.SignIn = user.NewThrottle(user.ThrottleOptions{})
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := prometheus.NewRegistry()
	s := &Server{
		Deps:     d,
		echo:     echo.New(),
		logger:   d.Logger,
		keys:     newKeyCache(d.Workspaces, 30*time.Second),
		metrics:  newHTTPMetrics(reg),
		Registry: reg,
	}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	// c.RealIP() and c.Scheme() read forwarding headers only from a proxy
	// the operator declared; a client cannot claim https or another address.
	if d.TrustProxy {
		e.IPExtractor, e.SchemeExtractor = echo.ExtractIPFromXFFHeader(), echo.ExtractSchemeFromHeaders()
	} else {
		e.IPExtractor, e.SchemeExtractor = echo.ExtractIPDirect(), echo.ExtractSchemeDirect()
	}
	e.Use(
		middleware.RequestID(),
		// nosniff, Referrer-Policy, X-Frame-Options and HSTS on every answer.
		s.securityHeaders,
		s.metrics.middleware,
		middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
			LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true, LogRequestID: true, LogError: true,
			HandleError: true,
			LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
				level := slog.LevelInfo
				if v.Status >= 500 {
					level = slog.LevelError
				}
				// The path only, never the query string: it may carry identifiers.
				s.logger.LogAttrs(c.Request().Context(), level, "request",
					slog.String("method", v.Method), slog.String("path", v.URIPath),
					slog.Int("status", v.Status), slog.Duration("latency", v.Latency),
					slog.String("request_id", v.RequestID))
				return nil
			},
		}),
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
				s.logger.Error("handler panicked", "err", err, "path", c.Path(), "stack", string(stack))
				return err
			},
		}),
		// Bulk import uploads are capped by their handler (MaxImportBytes), and
		// may take longer than a request's deadline to arrive.
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: d.BodyLimit, Skipper: isImportUpload}),
		// ... and the server's ReadTimeout is lifted for them (security.go).
		s.uploadDeadline,
		middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Timeout: d.RequestTimeout, Skipper: isImportUpload}),
		// analytics.js in customers' web pages calls the ingestion endpoints cross-origin.
		s.ingestCORS,
	)
	for _, r := range s.routes() {
		h := r.handler
		if r.scope != "" && !r.selfAuth {
			h = s.requireScope(r.scope)(h)
		}
		e.Add(r.method, r.path, h)
	}
	return s
}

// Handler returns the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.echo }

// Echo exposes the router, for route listing in tests and tools.
func (s *Server) Echo() *echo.Echo { return s.echo }

// decodeJSON reads a JSON body into dst, rejecting unknown fields so that a
// misspelt field is reported instead of silently ignored.
func decodeJSON(c echo.Context, dst any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return problem(http.StatusUnsupportedMediaType, "Send the body as JSON with Content-Type: application/json.")
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var (
			typeErr   *json.UnmarshalTypeError
			syntaxErr *json.SyntaxError
			maxErr    *http.MaxBytesError
		)
		switch {
		case errors.As(err, &maxErr):
			return problem(http.StatusRequestEntityTooLarge, "The request body is larger than this server accepts.")
		case errors.As(err, &typeErr):
			return invalid("A field has the wrong type.", FieldError{Field: typeErr.Field, Reason: fmt.Sprintf("must be a %s, not a %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)})
		case errors.As(err, &syntaxErr):
			return problem(http.StatusBadRequest, fmt.Sprintf("The body is not valid JSON (at byte %d): %v.", syntaxErr.Offset, syntaxErr))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return problem(http.StatusBadRequest, "The body is not valid JSON: it ends before the JSON value is complete.")
		case errors.Is(err, io.EOF):
			return problem(http.StatusBadRequest, "The request body is empty; send a JSON object.")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid("The body has a field this endpoint does not know.", FieldError{Field: field, Reason: "unknown field (check its spelling)"})
		}
		return problem(http.StatusBadRequest, "The body could not be read as JSON: "+err.Error())
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "map", "struct":
		return "object"
	default:
		return "number"
	}
}
