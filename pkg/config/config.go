// Package config loads Parcours settings from environment variables.
//
// Every setting has a documented default so that `parcours dev` runs on a
// fresh machine with no configuration at all. Config is loaded in main only and
// passed down explicitly; no other package reads the environment.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Var documents one environment variable: its name, default and meaning.
// Vars is the single source for the README's configuration table (a test
// checks that the README lists every one of them).
type Var struct {
	Name    string
	Default string
	Doc     string
}

// Vars lists every environment variable Parcours reads.
var Vars = []Var{
	{"DATABASE_URL", "postgres://localhost:5432/parcours", "PostgreSQL connection URL. `parcours dev` creates the database if it is missing. libpq parameters apply: `sslmode=verify-full`, `sslrootcert`, and `pool_max_conns` for the pool size (docs/operations.md)."},
	{"PARCOURS_HTTP_ADDR", ":8080", "Listen address of the HTTP API and console."},
	{"PARCOURS_DATA_DIR", ".parcours", "Where `parcours dev` keeps local state: Temporal's SQLite file, the first-start credentials, a private PostgreSQL cluster if one was needed."},
	{"TEMPORAL_ADDRESS", "(dev: embedded server; api/worker: localhost:7233)", "host:port of an existing Temporal frontend. Unset in `parcours dev` starts an embedded Temporal server."},
	{"TEMPORAL_NAMESPACE", "default", "Temporal namespace that journeys run in."},
	{"TEMPORAL_TLS_CERT", "(none)", "Client certificate file for mTLS to the Temporal frontend (self-hosted with mTLS or Temporal Cloud); with TEMPORAL_TLS_KEY."},
	{"TEMPORAL_TLS_KEY", "(none)", "Private key file of TEMPORAL_TLS_CERT."},
	{"TEMPORAL_TLS_CA", "(system roots)", "CA bundle that signed the Temporal frontend's certificate, for private CAs."},
	{"TEMPORAL_TLS_SERVER_NAME", "(the address's host)", "Server name to verify on the Temporal frontend's certificate."},
	{"TEMPORAL_API_KEY", "(none)", "Temporal Cloud API key; turns TLS on. Never logged."},
	{"PARCOURS_TEMPORAL_PORT", "7233", "gRPC port of the embedded Temporal server (`parcours dev` only)."},
	{"PARCOURS_TEMPORAL_UI_PORT", "8233", "Port of the embedded Temporal Web UI (`parcours dev` only); 0 disables it."},
	{"PARCOURS_TEMPORAL_UI_URL", "(dev: http://localhost:8233)", "Public URL of the Temporal Web UI, used to link runs from the API and console."},
	{"PARCOURS_TASK_QUEUE", "parcours", "Temporal task queue shared by the API (which starts workflows) and the worker."},
	{"PARCOURS_SEGMENT_SWEEP", "15m", "How often the Temporal Schedule re-evaluates segments whose rules use time windows (count(..., \"30d\"), days_since, ...)."},
	{"PARCOURS_BODY_LIMIT", "1M", "Largest request body the API accepts (Echo size syntax: 512K, 1M, ...)."},
	{"PARCOURS_REQUEST_TIMEOUT", "30s", "Deadline of one API request."},
	{"PARCOURS_SECRET_KEY", "(dev: generated in .parcours/secret.key)", "Base64 of 32 random bytes (`openssl rand -base64 32`): encrypts channel secrets (SendGrid API keys, webhook signing secrets) with AES-256-GCM, signs unsubscribe and preference links, and keys the hashes of suppressed addresses and erased identifiers (HMAC-SHA256 per workspace). Required by `parcours api` and `parcours worker` to use channels; keep it stable, or stored secrets no longer decrypt and suppressions and erasures no longer match."},
	{"PARCOURS_PUBLIC_URL", "(dev: the API's URL)", "Public base URL of the API, used in the unsubscribe links of emails (List-Unsubscribe)."},
	{"PARCOURS_OUTBOUND_ALLOW", "(none)", "Comma-separated hosts that webhooks and provider base URLs may reach although they are loopback or private (e.g. a local SendGrid fake: 127.0.0.1). Every other private address is refused at dial time."},
	{"PARCOURS_PROVIDER_URL_ALLOW", "api.sendgrid.com,api.eu.sendgrid.com,api.twilio.com,*.twilio.com", "Comma-separated hosts (host, host:port, or *.domain for its subdomains) that a workspace may set as the SendGrid or Twilio base_url; another host is refused (422), and a stored key is not sent to it. Setting it replaces the default: list the public hosts too if workspaces use them. An empty base_url (the provider's own host) is always allowed. `parcours dev` adds its mailbox's host."},
	{"PARCOURS_TRUST_PROXY", "false", "true when the API is reached only through a reverse proxy or load balancer that sets X-Forwarded-For and X-Forwarded-Proto: the client's address (sign-in throttling) and https (Secure cookies, HSTS) are then read from them, from proxies on loopback or private addresses. false: the connection's own address and scheme, whatever the headers say."},
	{"PARCOURS_SESSION_IDLE_TIMEOUT", "30m", "A console session unused for this long ends (sign in again); sessions end after 12 hours in any case."},
	{"PARCOURS_PASSWORD_HASH_CONCURRENCY", "4", "How many sign-in password checks (argon2id, 19 MiB each) an API process runs at once; a few more wait up to 2 s, the rest are answered 503 with Retry-After."},
	{"PARCOURS_WRITE_KEY_RATE", "1000", "Records a second one write key may send to /v1/track … /v1/batch, per API process (a batch counts its records); past it the API answers 429 with Retry-After and stores nothing of the request. 0: no limit."},
	{"PARCOURS_WRITE_KEY_BURST", "5000", "Records a write key may send at once after a quiet spell, on top of PARCOURS_WRITE_KEY_RATE. 0: no limit."},
	{"PARCOURS_PROFILE_EVENT_RATE", "600", "Records one person (one userId or anonymousId of a workspace) may bring a minute through write keys, per API process; those over it are not stored but kept in the quarantine with their reason, to replay. 0: no cap."},
	{"PARCOURS_QUARANTINE_RETENTION", "30d", "How long a record refused at ingestion or a bad import row is kept in the quarantine (replayed or not); the worker then deletes it, and the reasons of the bad rows imports list (their line and column stay). Days (30d) or a Go duration (720h), at least 1h; 0 keeps them for ever."},
	{"PARCOURS_PROVIDER_EVENT_RETENTION", "90d", "How long the SendGrid and Twilio events of deliveries (delivery_events) are kept; the worker then deletes them. Reports read the deliveries' first delivered, opened, clicked ... times, which stay. Days or a Go duration, at least 1h; 0 keeps them for ever."},
	{"LOG_LEVEL", "info", "debug, info, warn or error."},
	{"LOG_FORMAT", "text", "text or json."},
}

// ParseRetention reads a retention period: a number of days ("30d"), a Go
// duration of at least an hour ("720h"), or "0" for no limit (0).
func ParseRetention(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil && n > 0 && n <= 100*365 {
			d = time.Duration(n) * 24 * time.Hour
		} else {
			err = errors.New("bad days")
		}
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < time.Hour {
		return 0, errors.New("is not a number of days (30d), a duration of at least 1h (720h), or 0 (keep for ever)")
	}
	return d, nil
}

// Config is the loaded, validated configuration.
type Config struct {
	DatabaseURL       string
	HTTPAddr          string
	DataDir           string
	TemporalAddress   string // empty: embedded server in dev, localhost:7233 elsewhere
	TemporalNamespace string
	TemporalTLSCert   string
	TemporalTLSKey    string
	TemporalTLSCA     string
	TemporalTLSName   string
	TemporalAPIKey    string
	TemporalPort      int
	TemporalUIPort    int
	TemporalUIURL     string
	TaskQueue         string
	SegmentSweep      time.Duration
	BodyLimit         string
	RequestTimeout    time.Duration
	// SecretKey is PARCOURS_SECRET_KEY, decoded; nil when unset.
	SecretKey     []byte
	PublicURL     string
	OutboundAllow []string
	// ProviderURLAllow is PARCOURS_PROVIDER_URL_ALLOW: the hosts provider
	// base URLs may name.
	ProviderURLAllow []string
	// TrustProxy is PARCOURS_TRUST_PROXY: forwarding headers are believed.
	TrustProxy bool
	// SessionIdleTimeout is PARCOURS_SESSION_IDLE_TIMEOUT.
	SessionIdleTimeout time.Duration
	// PasswordHashConcurrency is PARCOURS_PASSWORD_HASH_CONCURRENCY.
	PasswordHashConcurrency int
	// WriteKeyRate and WriteKeyBurst are PARCOURS_WRITE_KEY_RATE and
	// PARCOURS_WRITE_KEY_BURST (records; 0: no limit).
	WriteKeyRate  int
	WriteKeyBurst int
	// ProfileEventRate is PARCOURS_PROFILE_EVENT_RATE (records a minute per
	// identifier; 0: no cap).
	ProfileEventRate int
	// QuarantineRetention is PARCOURS_QUARANTINE_RETENTION (default 30
	// days; 0: kept for ever).
	QuarantineRetention time.Duration
	// ProviderEventRetention is PARCOURS_PROVIDER_EVENT_RETENTION (default
	// 90 days; 0: kept for ever).
	ProviderEventRetention time.Duration
	LogLevel               slog.Level
	LogFormat              string
}

// Load reads the configuration through getenv (os.Getenv in main, a map in
// tests). It reports every invalid variable at once.
func Load(getenv func(string) string) (Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var errs []string
	atoi := func(name, def string) int {
		v := get(name, def)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Sprintf("%s=%q is not a port number (0-65535)", name, v))
		}
		return n
	}
	c := Config{
		DatabaseURL:       get("DATABASE_URL", "postgres://localhost:5432/parcours"),
		HTTPAddr:          get("PARCOURS_HTTP_ADDR", ":8080"),
		DataDir:           get("PARCOURS_DATA_DIR", ".parcours"),
		TemporalAddress:   get("TEMPORAL_ADDRESS", ""),
		TemporalNamespace: get("TEMPORAL_NAMESPACE", "default"),
		TemporalTLSCert:   get("TEMPORAL_TLS_CERT", ""),
		TemporalTLSKey:    get("TEMPORAL_TLS_KEY", ""),
		TemporalTLSCA:     get("TEMPORAL_TLS_CA", ""),
		TemporalTLSName:   get("TEMPORAL_TLS_SERVER_NAME", ""),
		TemporalAPIKey:    get("TEMPORAL_API_KEY", ""),
		TemporalPort:      atoi("PARCOURS_TEMPORAL_PORT", "7233"),
		TemporalUIPort:    atoi("PARCOURS_TEMPORAL_UI_PORT", "8233"),
		TemporalUIURL:     get("PARCOURS_TEMPORAL_UI_URL", ""),
		TaskQueue:         get("PARCOURS_TASK_QUEUE", "parcours"),
		BodyLimit:         get("PARCOURS_BODY_LIMIT", "1M"),
		LogFormat:         get("LOG_FORMAT", "text"),
	}
	var err error
	sweep := get("PARCOURS_SEGMENT_SWEEP", "15m")
	if c.SegmentSweep, err = time.ParseDuration(sweep); err != nil || c.SegmentSweep < time.Minute {
		errs = append(errs, fmt.Sprintf("PARCOURS_SEGMENT_SWEEP=%q is not a duration of at least 1m, such as 15m", sweep))
	}
	timeout := get("PARCOURS_REQUEST_TIMEOUT", "30s")
	d, err2 := time.ParseDuration(timeout)
	err = err2
	if err != nil || d <= 0 {
		errs = append(errs, fmt.Sprintf("PARCOURS_REQUEST_TIMEOUT=%q is not a positive duration such as 30s", timeout))
	}
	c.RequestTimeout = d
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Sprintf("LOG_LEVEL=%q must be debug, info, warn or error", get("LOG_LEVEL", "info")))
	}
	if k := get("PARCOURS_SECRET_KEY", ""); k != "" {
		if c.SecretKey, err = base64.StdEncoding.DecodeString(k); err != nil || len(c.SecretKey) != 32 {
			c.SecretKey = nil
			errs = append(errs, "PARCOURS_SECRET_KEY is not the base64 of 32 bytes (generate one with: openssl rand -base64 32)")
		}
	}
	c.PublicURL = strings.TrimRight(get("PARCOURS_PUBLIC_URL", ""), "/")
	for _, h := range strings.Split(get("PARCOURS_OUTBOUND_ALLOW", ""), ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.OutboundAllow = append(c.OutboundAllow, h)
		}
	}
	for _, h := range strings.Split(get("PARCOURS_PROVIDER_URL_ALLOW", "api.sendgrid.com,api.eu.sendgrid.com,api.twilio.com,*.twilio.com"), ",") {
		switch h = strings.ToLower(strings.TrimSpace(h)); {
		case h == "":
		case strings.ContainsAny(h, "/@ \t") || strings.Contains(strings.TrimPrefix(h, "*."), "*"):
			errs = append(errs, fmt.Sprintf("PARCOURS_PROVIDER_URL_ALLOW entry %q is not a host, host:port or *.domain such as api.sendgrid.com (no scheme or path)", h))
		default:
			c.ProviderURLAllow = append(c.ProviderURLAllow, h)
		}
	}
	trust := get("PARCOURS_TRUST_PROXY", "false")
	if c.TrustProxy, err = strconv.ParseBool(trust); err != nil {
		errs = append(errs, fmt.Sprintf("PARCOURS_TRUST_PROXY=%q must be true or false", trust))
	}
	idle := get("PARCOURS_SESSION_IDLE_TIMEOUT", "30m")
	if c.SessionIdleTimeout, err = time.ParseDuration(idle); err != nil || c.SessionIdleTimeout < time.Minute {
		errs = append(errs, fmt.Sprintf("PARCOURS_SESSION_IDLE_TIMEOUT=%q is not a duration of at least 1m, such as 30m", idle))
	}
	hashes := get("PARCOURS_PASSWORD_HASH_CONCURRENCY", "4")
	if c.PasswordHashConcurrency, err = strconv.Atoi(hashes); err != nil || c.PasswordHashConcurrency < 1 || c.PasswordHashConcurrency > 64 {
		errs = append(errs, fmt.Sprintf("PARCOURS_PASSWORD_HASH_CONCURRENCY=%q is not a number from 1 to 64 (each check holds 19 MiB)", hashes))
	}
	count := func(name, def string) int {
		v := get(name, def)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100_000_000 {
			errs = append(errs, fmt.Sprintf("%s=%q is not a number of records (0 turns the limit off)", name, v))
		}
		return n
	}
	c.WriteKeyRate = count("PARCOURS_WRITE_KEY_RATE", "1000")
	c.WriteKeyBurst = count("PARCOURS_WRITE_KEY_BURST", "5000")
	c.ProfileEventRate = count("PARCOURS_PROFILE_EVENT_RATE", "600")
	retention := func(name, def string) time.Duration {
		v := get(name, def)
		d, err := ParseRetention(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q %v", name, v, err))
		}
		return d
	}
	c.QuarantineRetention = retention("PARCOURS_QUARANTINE_RETENTION", "30d")
	c.ProviderEventRetention = retention("PARCOURS_PROVIDER_EVENT_RETENTION", "90d")
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Sprintf("LOG_FORMAT=%q must be text or json", c.LogFormat))
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		errs = append(errs, "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both or neither")
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}
