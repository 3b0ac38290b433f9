package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/ingest"
	"github.com/parcours/parcours/pkg/journey"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/segment"
	"github.com/parcours/parcours/pkg/template"
	"github.com/parcours/parcours/pkg/validation"
)

// KeyID is the key id the demo records are stored with: no API key sent
// them, the demo loader did (events.key_id is not a reference to a key).
const KeyID = "00000000-0000-0000-0000-00000000de70"

// batchRecords is how many records go in one ingestion call, as a Segment
// library batches them: well under the 500 KB a batch may weigh.
const batchRecords = 200

// lockClass is the first half of the advisory lock that keeps two loads of
// the same workspace (a double click, the command and the button) from
// creating the same journey twice; the second half is the workspace.
const lockClass = 0x64656d6f // "demo"

// demoSegments are the segments the demo creates, in the rule language a
// marketer writes. "customers" is the segment the thank-you scenario starts on.
var demoSegments = []struct{ Slug, Name, Rule string }{
	{"customers", "Customers", `profile.order_count >= 1`},
	{"loyal-customers", "Loyal customers", `profile.order_count >= 2`},
	{"abandoned-carts", "Abandoned carts", `performed("Cart Updated", "7d") && !performed("Order Completed", "7d")`},
	{"engaged-visitors", "Engaged visitors", `count("Product Viewed", "7d") >= 8 || clicked("newsletter")`},
}

// demoJourneys are the journeys the demo creates from the four built-in
// scenarios and publishes. The names say they are the demo's, so that a
// journey a person made from the same scenario is never touched.
var demoJourneys = []struct{ Scenario, Name string }{
	{"welcome", "Welcome new sign-ups (demo)"},
	{"abandoned_cart", "Rescue abandoned carts (demo)"},
	{"resend_non_openers", "Newsletter, resent to non-openers (demo)"},
	{"thank_you", "Thank new customers (demo)"},
}

// Loader loads the demo shop into a workspace.
type Loader struct {
	Pool   *pgxpool.Pool
	Ingest *ingest.Store
	// Validation applies the workspace's validation rules, as the API
	// does; nil accepts every record that parses.
	Validation *validation.Store
	Segments   *segment.Store
	Journeys   *journey.Store
	Templates  *template.Store
	Profiles   *profile.Store
}

// New returns a Loader whose stores all work over pool (for a command; the
// API passes its own stores, whose caches then stay current).
func New(pool *pgxpool.Pool) *Loader {
	return &Loader{Pool: pool, Ingest: ingest.NewStore(pool), Validation: validation.NewStore(pool, 0),
		Segments: segment.NewStore(pool, 0), Journeys: journey.NewStore(pool, 0),
		Templates: template.NewStore(pool), Profiles: profile.NewStore(pool)}
}

// fillIn gives a Loader built by hand the stores it lacks (Validation
// excepted: nil means no rules, as for the API).
func (l *Loader) fillIn() {
	if l.Ingest == nil {
		l.Ingest = ingest.NewStore(l.Pool)
	}
	if l.Segments == nil {
		l.Segments = segment.NewStore(l.Pool, 0)
	}
	if l.Journeys == nil {
		l.Journeys = journey.NewStore(l.Pool, 0)
	}
	if l.Templates == nil {
		l.Templates = template.NewStore(l.Pool)
	}
	if l.Profiles == nil {
		l.Profiles = profile.NewStore(l.Pool)
	}
}

// Result says what a load did and what the workspace holds afterwards.
type Result struct {
	// Records is how many records the demo shop has; Accepted were stored
	// by this load, Duplicates were there already (an earlier load),
	// Rejected were refused by the workspace's validation rules (and kept
	// in quarantine), Suppressed name a person who was erased.
	Records, Accepted, Duplicates, Rejected, Suppressed int
	// BySource counts the records stored now, by source.
	BySource map[string]int
	// Merges counts the profiles identity resolution merged into another.
	Merges int
	// EmailEvents counts the newsletter opens and clicks stored now.
	EmailEvents int
	// FirstEventAt and LastEventAt bound the records' timestamps.
	FirstEventAt, LastEventAt time.Time
	// Profiles counts the workspace's profiles by state after the load.
	Profiles map[string]int
	Segments []SegmentResult
	Journeys []JourneyResult
	// Templates lists the templates the journeys send.
	Templates []TemplateResult
}

// SegmentResult is a demo segment after the load.
type SegmentResult struct {
	ID, Slug, Name string
	Members        int
	// Created is false when the workspace had a segment with this slug.
	Created bool
}

// JourneyResult is a demo journey after the load.
type JourneyResult struct {
	ID, Name, Status string
	Created          bool
}

// TemplateResult is a template the demo journeys send.
type TemplateResult struct {
	Slug, Name string
	Created    bool
}

// Added reports whether the load changed anything: false when the demo was
// loaded before, in full.
func (r Result) Added() bool {
	if r.Accepted > 0 || r.EmailEvents > 0 {
		return true
	}
	for _, s := range r.Segments {
		if s.Created {
			return true
		}
	}
	for _, j := range r.Journeys {
		if j.Created {
			return true
		}
	}
	for _, t := range r.Templates {
		if t.Created {
			return true
		}
	}
	return false
}

// Load loads the demo shop into the workspace, with timestamps over the
// seven days before now. It is idempotent: what exists already (records by
// messageId, segments by slug, templates by slug, journeys by name) is
// kept as it is, so a second load adds nothing.
//
// Journeys are published last: the week of history starts no run (as an
// import's would not), and what arrives from now on does.
func (l *Loader) Load(ctx context.Context, workspaceID string, now time.Time) (Result, error) {
	l.fillIn()
	now = now.UTC()
	res := Result{BySource: map[string]int{}}
	// The lock is held by a transaction that does nothing else: rolling it
	// back, even on a cancelled context (pgx then closes the connection),
	// releases it.
	lock, err := l.Pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("load demo data: %w", err)
	}
	defer lock.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // releasing the lock; nothing was written
	if _, err := lock.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClass, workspaceID); err != nil {
		return res, fmt.Errorf("wait for another demo load: %w", err)
	}

	if res.Templates, err = l.ensureTemplates(ctx, workspaceID); err != nil {
		return res, err
	}
	// Segments before records: their members are computed as records
	// arrive, as they would be for a live source.
	if err := l.ensureSegments(ctx, workspaceID, &res); err != nil {
		return res, err
	}
	ds := Build(now)
	res.Records = len(ds.Records)
	for _, r := range ds.Records {
		if res.FirstEventAt.IsZero() || r.At.Before(res.FirstEventAt) {
			res.FirstEventAt = r.At
		}
		if r.At.After(res.LastEventAt) {
			res.LastEventAt = r.At
		}
	}
	for _, src := range loadOrder {
		var recs []Record
		for _, r := range ds.Records {
			if r.Source == src {
				recs = append(recs, r)
			}
		}
		for chunk := range slices.Chunk(recs, batchRecords) {
			if err := l.ingestBatch(ctx, workspaceID, src, chunk, now, &res); err != nil {
				return res, err
			}
		}
	}
	if err := l.recordEmailEvents(ctx, workspaceID, ds.EmailEvents, now, &res); err != nil {
		return res, err
	}
	// A full sweep, as the recompute workflow makes after a segment is
	// created: sizes and "last computed" are recorded, and a segment that
	// existed before the load is up to date too.
	if err := l.recompute(ctx, workspaceID, now); err != nil {
		return res, err
	}
	if res.Journeys, err = l.ensureJourneys(ctx, workspaceID); err != nil {
		return res, err
	}
	return res, l.describe(ctx, workspaceID, &res)
}

// ingestBatch sends records of one source as one Segment batch through
// what /v1/batch runs: parsing, validation rules, identity resolution and
// storage in one transaction, then the real-time segments.
func (l *Loader) ingestBatch(ctx context.Context, workspaceID, source string, recs []Record, now time.Time, res *Result) error {
	bodies := make([]map[string]any, len(recs))
	for i, r := range recs {
		bodies[i] = r.Body
	}
	body, err := json.Marshal(map[string]any{"batch": bodies})
	if err != nil {
		return fmt.Errorf("encode demo records: %w", err)
	}
	msgs, rejected, _, err := events.ParseBatch(body, now)
	if err != nil {
		return fmt.Errorf("parse demo records from %s: %w", source, err)
	}
	if l.Validation != nil {
		rules, err := l.Validation.Enabled(ctx, workspaceID)
		if err != nil {
			return err
		}
		if len(rules) > 0 {
			valid := msgs[:0:0]
			for i := range msgs {
				if reason := validation.Check(rules, &msgs[i], source); reason != "" {
					rejected = append(rejected, events.Rejected{Raw: msgs[i].Raw, Err: &events.Error{Index: msgs[i].Index, Field: "rule", Reason: reason}})
					continue
				}
				valid = append(valid, msgs[i])
			}
			msgs = valid
		}
	}
	rejects := make([]ingest.Rejection, len(rejected))
	for i, r := range rejected {
		rejects[i] = ingest.Rejection{Field: fmt.Sprintf("batch[%d].%s", r.Err.Index, r.Err.Field), Reason: r.Err.Reason, Raw: r.Raw, ReceivedAt: now}
	}
	// The records start no journey (the origin does not ask for it): a
	// week of history is not news, as an import's is not.
	out, err := l.Ingest.Ingest(ctx, ingest.Origin{WorkspaceID: workspaceID, KeyID: KeyID, Source: source}, msgs, rejects)
	if err != nil {
		return fmt.Errorf("ingest demo records from %s: %w", source, err)
	}
	res.Accepted += out.Accepted
	res.Duplicates += out.Duplicates
	res.Suppressed += out.Suppressed
	res.Merges += out.Merges
	res.Rejected += len(rejected)
	res.BySource[source] += out.Accepted
	if _, err := l.Segments.Refresh(ctx, workspaceID, out.Changes, now); err != nil {
		return fmt.Errorf("update segments after demo records: %w", err)
	}
	return nil
}

// recordEmailEvents records newsletter opens and clicks as the SendGrid
// event webhook does: internal events on the profile that holds the email.
func (l *Loader) recordEmailEvents(ctx context.Context, workspaceID string, evs []EmailEvent, now time.Time, res *Result) error {
	profiles := map[string]string{}
	var internal []ingest.InternalEvent
	for _, ev := range evs {
		email := identity.Normalize(identity.Email, ev.Email)
		pid, ok := profiles[email]
		if !ok {
			var err error
			pid, err = l.Profiles.Lookup(ctx, workspaceID, identity.Email, email)
			if errors.Is(err, profile.ErrNotFound) {
				continue // a validation rule refused the records that carried it
			}
			if err != nil {
				return err
			}
			profiles[email] = pid
		}
		raw, err := json.Marshal(map[string]any{"type": events.TypeTrack, "event": ev.Event, "messageId": ev.MessageID, "timestamp": ev.At, "properties": ev.Properties})
		if err != nil {
			return fmt.Errorf("encode demo email event: %w", err)
		}
		internal = append(internal, ingest.InternalEvent{ProfileID: pid, Message: events.Message{
			Type: events.TypeTrack, MessageID: ev.MessageID, Event: ev.Event, Properties: ev.Properties,
			Traits: map[string]any{}, Context: map[string]any{}, Timestamp: ev.At.UTC().Truncate(time.Microsecond),
			ReceivedAt: now, Raw: raw, Index: -1,
		}})
	}
	out, err := l.Ingest.IngestInternal(ctx, workspaceID, internal)
	if err != nil {
		return fmt.Errorf("record demo email events: %w", err)
	}
	res.EmailEvents = out.Accepted
	if _, err := l.Segments.Refresh(ctx, workspaceID, out.Changes, now); err != nil {
		return fmt.Errorf("update segments after demo email events: %w", err)
	}
	return nil
}

func (l *Loader) recompute(ctx context.Context, workspaceID string, now time.Time) error {
	after := ""
	for {
		next, _, err := l.Segments.RecomputeBatch(ctx, workspaceID, after, 500, now, false)
		if err != nil {
			return fmt.Errorf("compute demo segments: %w", err)
		}
		if next == "" {
			break
		}
		after = next
	}
	return l.Segments.FinishRecompute(ctx, workspaceID, now)
}

// ensureTemplates creates the starter templates the demo journeys send,
// keeping any the workspace has under the same slug.
func (l *Loader) ensureTemplates(ctx context.Context, workspaceID string) ([]TemplateResult, error) {
	var out []TemplateResult
	for _, dj := range demoJourneys {
		sc, err := journey.LoadScenario(dj.Scenario)
		if err != nil {
			return nil, err
		}
		for _, slug := range sc.Templates {
			if slices.ContainsFunc(out, func(t TemplateResult) bool { return t.Slug == slug }) {
				continue
			}
			t, err := l.Templates.BySlug(ctx, workspaceID, slug)
			if err == nil {
				out = append(out, TemplateResult{Slug: slug, Name: t.Name})
				continue
			}
			if !errors.Is(err, template.ErrNotFound) {
				return nil, fmt.Errorf("look up template %s: %w", slug, err)
			}
			def, ok := template.Default(slug)
			if !ok {
				return nil, fmt.Errorf("scenario %s sends template %s, which has no starter version", dj.Scenario, slug)
			}
			if t, err = l.Templates.Create(ctx, workspaceID, def); err != nil {
				return nil, fmt.Errorf("create template %s: %w", slug, err)
			}
			out = append(out, TemplateResult{Slug: slug, Name: t.Name, Created: true})
		}
	}
	return out, nil
}

// ensureSegments creates the demo segments whose slug is free.
func (l *Loader) ensureSegments(ctx context.Context, workspaceID string, res *Result) error {
	for _, ds := range demoSegments {
		sg, err := l.Segments.Create(ctx, workspaceID, ds.Slug, ds.Name, ds.Rule)
		switch {
		case errors.Is(err, segment.ErrSlugTaken):
			res.Segments = append(res.Segments, SegmentResult{Slug: ds.Slug})
		case err != nil:
			return fmt.Errorf("create segment %s: %w", ds.Slug, err)
		default:
			res.Segments = append(res.Segments, SegmentResult{ID: sg.ID, Slug: sg.Slug, Name: sg.Name, Created: true})
		}
	}
	return nil
}

// ensureJourneys creates each demo journey from its scenario and publishes
// it. A demo journey that exists is left as it is (paused stays paused),
// unless it was never published: a load that stopped half-way.
func (l *Loader) ensureJourneys(ctx context.Context, workspaceID string) ([]JourneyResult, error) {
	existing, err := l.Journeys.List(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	var out []JourneyResult
	for _, dj := range demoJourneys {
		i := slices.IndexFunc(existing, func(j journey.Journey) bool { return j.Name == dj.Name })
		var j journey.Journey
		created := i < 0
		if created {
			sc, err := journey.LoadScenario(dj.Scenario)
			if err != nil {
				return nil, err
			}
			if bad := sc.Adjust(journey.Adjustments{Name: dj.Name}); len(bad) > 0 {
				return nil, fmt.Errorf("adjust scenario %s: %s %s", dj.Scenario, bad[0].Field, bad[0].Reason)
			}
			if j, err = l.Journeys.Create(ctx, workspaceID, sc.Definition); err != nil {
				return nil, fmt.Errorf("create journey %q: %w", dj.Name, err)
			}
		} else {
			j = existing[i]
		}
		if j.PublishedVersion == nil {
			if j, err = l.Journeys.Publish(ctx, workspaceID, j.ID); err != nil {
				return nil, fmt.Errorf("publish journey %q: %w", dj.Name, err)
			}
		}
		out = append(out, JourneyResult{ID: j.ID, Name: j.Name, Status: j.Status, Created: created})
	}
	return out, nil
}

// describe fills in what the workspace holds after the load.
func (l *Loader) describe(ctx context.Context, workspaceID string, res *Result) error {
	var err error
	if res.Profiles, err = l.Profiles.CountByState(ctx, workspaceID); err != nil {
		return err
	}
	segs, err := l.Segments.List(ctx, workspaceID)
	if err != nil {
		return err
	}
	for i, r := range res.Segments {
		if j := slices.IndexFunc(segs, func(s segment.Segment) bool { return s.Slug == r.Slug }); j >= 0 {
			res.Segments[i].ID, res.Segments[i].Name, res.Segments[i].Members = segs[j].ID, segs[j].Name, segs[j].Size
		}
	}
	return nil
}
