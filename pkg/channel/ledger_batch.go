package channel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/profile"
	"github.com/parcours/parcours/pkg/template"
)

// MaxBatch is the most recipients SendBatch takes at once: one SendGrid
// request's worth.
const MaxBatch = MaxPersonalizations

// Reasons SendBatch gives that single sends never do.
const (
	ReasonDuplicateAddress = "another recipient of this send has the same address"
	ReasonEmptySubject     = "the subject renders empty (SendGrid refuses an email without one)"
	ReasonEmptyBody        = "the template renders neither HTML nor text"
	ReasonNoProfile        = "profile not found (erased?)"
)

// BatchRecipient is one message of a batch.
type BatchRecipient struct {
	// BusinessKey makes this message happen once, e.g.
	// broadcast/<id>/<occurrence>/<profile>.
	BusinessKey string
	// ProfileID is the recipient; "" when the person was erased (the
	// message is then skipped without a ledger row).
	ProfileID string
}

// BatchRequest asks for one template to be sent to many profiles, each
// message once, in as few provider calls as possible. Email only.
type BatchRequest struct {
	WorkspaceID  string
	TemplateSlug string
	Channel      string
	Class        string
	Recipients   []BatchRecipient
	// CustomArgs go on every message, next to parcours_delivery_id: ids
	// only (e.g. parcours_broadcast_id).
	CustomArgs map[string]string
	// ClaimAddresses, when set, is asked which recipients may use their
	// address (ok[i] for profileIDs[i]); the others are skipped with
	// ReasonDuplicateAddress. It must answer the same on a retry.
	ClaimAddresses func(ctx context.Context, profileIDs []string, addressHashes [][]byte) (ok []bool, err error)
}

// BatchOutcome is what became of one recipient.
type BatchOutcome struct {
	DeliveryID        string
	Status            string
	Reason            string
	ProviderMessageID string
}

// BatchResult is the outcome of each recipient, in the request's order,
// and the number of provider calls made.
type BatchResult struct {
	Outcomes []BatchOutcome
	Calls    int
}

// batchItem is a recipient on its way through SendBatch.
type batchItem struct {
	i       int // index in the request
	d       Delivery
	proceed bool
	view    *profile.View
	addr    string
	hash    []byte // the address's hash in the workspace (Store.AddressHash)
	msg     BatchMessage
	status  string // what this attempt decided: skipped, failed or sent
	reason  string
}

// SendBatch sends one message per recipient through the ledger, with the
// rules of Send — one row per business key claimed before the provider is
// called; consent, suppressions and the address checked at send time; a
// decided row returned as it is — and one SendGrid request for up to 1,000
// messages. A permanent refusal of a request marks its messages failed with
// SendGrid's reason and the others go on; a retryable one (429, 5xx,
// network) returns a *SendError after recording what was decided, and the
// next attempt sends only what is still owed.
func (l *Ledger) SendBatch(ctx context.Context, req BatchRequest) (BatchResult, error) {
	res := BatchResult{Outcomes: make([]BatchOutcome, len(req.Recipients))}
	switch {
	case req.Channel != ChannelEmail:
		return res, &FieldError{"channel", "batches send email only"}
	case req.Class != Marketing && req.Class != Transactional:
		return res, &FieldError{"class", "must be marketing or transactional"}
	case req.TemplateSlug == "":
		return res, &FieldError{"template", "is required"}
	case len(req.Recipients) > MaxBatch:
		return res, &FieldError{"recipients", fmt.Sprintf("at most %d per batch", MaxBatch)}
	}
	items, err := l.claimBatch(ctx, req)
	if err != nil {
		return res, err
	}
	outcome := func(it *batchItem) {
		res.Outcomes[it.i] = BatchOutcome{DeliveryID: it.d.ID, Status: it.d.Status, Reason: it.d.Reason, ProviderMessageID: it.d.ProviderMessageID}
	}
	var todo []*batchItem
	for _, it := range items {
		if it.proceed {
			todo = append(todo, it)
		} else {
			outcome(it)
		}
	}
	defer func() {
		for _, it := range todo {
			outcome(it)
		}
	}()
	if len(todo) == 0 {
		return res, nil
	}
	send, settings, key, err := l.prepareBatch(ctx, req, todo)
	if err != nil {
		return res, err
	}
	// Decisions taken without calling the provider.
	var decided []*batchItem
	for _, it := range todo {
		if it.status != "" {
			decided = append(decided, it)
		}
	}
	if err := l.finishBatch(ctx, req.WorkspaceID, decided, ""); err != nil {
		return res, err
	}
	if len(send) == 0 {
		return res, nil
	}
	msgs := make([]BatchMessage, len(send))
	for i, it := range send {
		msgs[i] = it.msg
	}
	for _, r := range planBatch(msgs) {
		// The delivery policy and the compare-and-set per request, right
		// before its call: a worker that dies between two requests leaves
		// the later ones certainly unsent.
		won, err := l.admitBatch(ctx, req, send, r.members)
		if err != nil {
			return res, err
		}
		body, members, err := r.body(msgs, settings.FromEmail, settings.FromName, func(m int) bool { return won[send[m].d.ID] })
		if err != nil {
			return res, err
		}
		if body == nil {
			continue
		}
		batch := make([]*batchItem, len(members))
		for i, m := range members {
			batch[i] = send[m]
		}
		res.Calls++
		out, sendErr := l.SendGrid.post(ctx, key, settings.BaseURL, body)
		if sendErr == nil {
			for _, it := range batch {
				it.status = StatusSent
			}
			if err := l.finishBatch(ctx, req.WorkspaceID, batch, out.ProviderMessageID); err != nil {
				return res, err
			}
			continue
		}
		var se *SendError
		if !errors.As(sendErr, &se) {
			se = &SendError{Reason: sendErr.Error()}
		}
		if se.Permanent {
			for _, it := range batch {
				it.status, it.reason = StatusFailed, se.Reason
			}
			if err := l.finishBatch(ctx, req.WorkspaceID, batch, ""); err != nil {
				return res, err
			}
			continue
		}
		// Retryable: release what certainly did not go; leave in flight what
		// may have (the next attempt applies the class's rule).
		ids := make([]string, len(batch))
		for i, it := range batch {
			ids[i] = it.d.ID
			it.d.Reason = se.Reason
		}
		if err := lookups(ctx, l.Pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE deliveries SET in_flight = NOT $3, reason = $4, updated_at = now() WHERE workspace_id = $1 AND id = ANY($2::uuid[])`,
				req.WorkspaceID, ids, se.NotSent, se.Reason)
			return err
		}); err != nil {
			return res, fmt.Errorf("record retryable failure of a batch: %w (after %w)", err, se)
		}
		return res, se
	}
	return res, nil
}

// claimBatch inserts the rows of the batch, or decides what to do with the
// rows that exist, as claim does for one.
func (l *Ledger) claimBatch(ctx context.Context, req BatchRequest) ([]*batchItem, error) {
	items := make([]*batchItem, len(req.Recipients))
	byKey := make(map[string]*batchItem, len(req.Recipients))
	var keys []string
	var profiles []string
	for i, r := range req.Recipients {
		it := &batchItem{i: i}
		items[i] = it
		if r.ProfileID == "" {
			it.d = Delivery{BusinessKey: r.BusinessKey, Status: StatusSkipped, Reason: ReasonNoProfile}
			continue
		}
		if r.BusinessKey == "" || len(r.BusinessKey) > 500 {
			return nil, &FieldError{"business_key", "must be 1-500 characters"}
		}
		if byKey[r.BusinessKey] != nil {
			return nil, &FieldError{"business_key", "appears twice in the batch: " + r.BusinessKey}
		}
		byKey[r.BusinessKey] = it
		keys = append(keys, r.BusinessKey)
		profiles = append(profiles, r.ProfileID)
	}
	if len(keys) == 0 {
		return items, nil
	}
	err := lookups(ctx, l.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			INSERT INTO deliveries (workspace_id, business_key, profile_id, channel, status, class)
			SELECT $1, k, p, $4, 'claimed', $5 FROM unnest($2::text[], $3::uuid[]) AS x(k, p)
			ON CONFLICT (workspace_id, business_key) DO NOTHING RETURNING `+batchCols,
			req.WorkspaceID, keys, profiles, req.Channel, req.Class)
		if err != nil {
			return err
		}
		fresh, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanBatch(r) })
		if err != nil {
			return err
		}
		for _, d := range fresh {
			it := byKey[d.BusinessKey]
			it.d, it.proceed = d, true
		}
		if len(fresh) == len(keys) {
			return nil
		}
		var existing []string
		for _, k := range keys {
			if !byKey[k].proceed {
				existing = append(existing, k)
			}
		}
		// Rows of an earlier attempt: the outcome of a decided row stands; a
		// marketing row left in flight becomes unknown (at most once); a
		// released row, or a transactional one, is taken over.
		rows, err = tx.Query(ctx, `SELECT `+batchCols+`, in_flight FROM deliveries WHERE workspace_id = $1 AND business_key = ANY($2::text[]) ORDER BY id FOR UPDATE`,
			req.WorkspaceID, existing)
		if err != nil {
			return err
		}
		var unknown, takeOver []string
		for rows.Next() {
			var inFlight bool
			d, err := scanBatch(scanPlus{rows, &inFlight})
			if err != nil {
				rows.Close()
				return err
			}
			it := byKey[d.BusinessKey]
			it.d = d
			switch {
			case d.Status != StatusClaimed:
			case inFlight && d.Class == Marketing:
				unknown = append(unknown, d.ID)
			default:
				takeOver = append(takeOver, d.ID)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		update := func(sql string, ids []string, proceed bool) error {
			if len(ids) == 0 {
				return nil
			}
			rows, err := tx.Query(ctx, sql, req.WorkspaceID, ids)
			if err != nil {
				return err
			}
			ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanBatch(r) })
			if err != nil {
				return err
			}
			for _, d := range ds {
				it := byKey[d.BusinessKey]
				it.d, it.proceed = d, proceed
			}
			return nil
		}
		if err := update(`
			UPDATE deliveries SET status = 'unknown', in_flight = false, updated_at = now(),
			reason = 'a previous attempt stopped after calling the provider; not sent again (marketing: at most once)'
			WHERE workspace_id = $1 AND id = ANY($2::uuid[]) RETURNING `+batchCols, unknown, false); err != nil {
			return err
		}
		return update(`
			UPDATE deliveries SET attempts = attempts + 1, in_flight = false, updated_at = now()
			WHERE workspace_id = $1 AND id = ANY($2::uuid[]) RETURNING `+batchCols, takeOver, true)
	})
	if err != nil {
		return nil, fmt.Errorf("claim a batch of %d deliveries: %w", len(keys), err)
	}
	return items, nil
}

// lookups runs fn in a transaction planned for what a batch does: a
// thousand index lookups into tables of any size. With the default cost
// model (random_page_cost 4, for disks that seek) PostgreSQL prefers to scan
// every row of the workspace once a table holds some 100,000 of them, which
// made each batch of a broadcast slower than the one before; the rows a
// batch reads are cached, and 1.1 is the usual setting for SSDs.
func lookups(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL random_page_cost = 1.1`); err != nil {
			return err
		}
		return fn(tx)
	})
}

// lookup runs one query under lookups and hands each row to each.
func lookup(ctx context.Context, pool *pgxpool.Pool, each func(pgx.Rows) error, sql string, args ...any) error {
	return lookups(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := each(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// batchCols are the columns of a delivery a batch needs: fewer than
// deliveryCols, read 1,000 rows at a time.
const batchCols = `id::text, business_key, coalesce(template_id::text, ''), status, reason, provider_message_id, attempts, class`

func scanBatch(row pgx.Row) (Delivery, error) {
	var d Delivery
	err := row.Scan(&d.ID, &d.BusinessKey, &d.TemplateID, &d.Status, &d.Reason, &d.ProviderMessageID, &d.Attempts, &d.Class)
	return d, err
}

// scanPlus scans batchCols then extra columns.
type scanPlus struct {
	row   pgx.Row
	extra *bool
}

func (s scanPlus) Scan(dest ...any) error { return s.row.Scan(append(dest, s.extra)...) }

// prepareBatch loads what the batch needs, takes every decision that needs
// no provider (it.status), renders the rest and returns them.
func (l *Ledger) prepareBatch(ctx context.Context, req BatchRequest, todo []*batchItem) ([]*batchItem, EmailSettings, string, error) {
	failAll := func(reason string) ([]*batchItem, EmailSettings, string, error) {
		for _, it := range todo {
			it.status, it.reason = StatusFailed, reason
		}
		return nil, EmailSettings{}, "", nil
	}
	tpl, err := l.Templates.BySlug(ctx, req.WorkspaceID, req.TemplateSlug)
	if errors.Is(err, template.ErrNotFound) {
		return failAll(fmt.Sprintf("template %q not found", req.TemplateSlug))
	}
	if err != nil {
		return nil, EmailSettings{}, "", err
	}
	for _, it := range todo {
		it.d.TemplateID = tpl.ID
	}
	if tpl.Channel != req.Channel {
		return failAll(fmt.Sprintf("template %q is for %s, not %s", tpl.Slug, tpl.Channel, req.Channel))
	}
	if tpl.Kind != "" && tpl.Kind != template.KindMessage {
		return failAll(fmt.Sprintf("template %q is a %s, not a message: send a message that renders it", tpl.Slug, tpl.Kind))
	}
	compiled, err := l.Templates.Compile(ctx, req.WorkspaceID, tpl)
	if err != nil {
		return failAll(fmt.Sprintf("template %q does not compile: %v", tpl.Slug, err))
	}
	settings, key, err := l.Settings.emailWithKey(ctx, req.WorkspaceID)
	if errors.Is(err, ErrNotConfigured) {
		return failAll("the email channel is not configured (PUT /v1/channels/email)")
	}
	if err != nil {
		return nil, EmailSettings{}, "", err
	}

	ids := make([]string, len(todo))
	for i, it := range todo {
		ids[i] = req.Recipients[it.i].ProfileID
	}
	views, err := l.loadViews(ctx, req.WorkspaceID, ids)
	if err != nil {
		return nil, EmailSettings{}, "", err
	}
	var live []*batchItem
	for _, it := range todo {
		it.view = views[req.Recipients[it.i].ProfileID]
		switch {
		case it.view == nil:
			it.status, it.reason = StatusSkipped, ReasonNoProfile
		default:
			if it.addr = emailOf(it.view); it.addr == "" {
				it.status, it.reason = StatusSkipped, "the profile has no email address"
			} else {
				it.hash = l.Settings.AddressHash(req.WorkspaceID, it.addr)
				live = append(live, it)
			}
		}
	}
	// Consent, for the message's class as purpose (no row: subscribed).
	if len(live) > 0 {
		survivors := make([]string, len(live))
		for i, it := range live {
			survivors[i] = it.view.ID
		}
		unsub := map[string]bool{}
		err := lookup(ctx, l.Pool, func(r pgx.Rows) error {
			var id string
			err := r.Scan(&id)
			unsub[id] = true
			return err
		}, `SELECT profile_id::text FROM subscriptions WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])
			AND channel = $3 AND purpose = $4 AND status = 'unsubscribed'`, req.WorkspaceID, survivors, req.Channel, req.Class)
		if err != nil {
			return nil, EmailSettings{}, "", fmt.Errorf("load consent of a batch: %w", err)
		}
		live = keepIf(live, func(it *batchItem) bool {
			if unsub[it.view.ID] {
				it.status, it.reason = StatusSkipped, fmt.Sprintf("unsubscribed from %s %s", req.Class, req.Channel)
				return false
			}
			return true
		})
	}
	// Suppressions: an unsubscribe stops marketing only; bounces, spam
	// reports and manual suppressions stop everything.
	if len(live) > 0 {
		hashes := make([][]byte, len(live))
		for i, it := range live {
			hashes[i] = it.hash
		}
		suppressed := map[string]string{}
		err := lookup(ctx, l.Pool, func(r pgx.Rows) error {
			var h []byte
			var reason string
			err := r.Scan(&h, &reason)
			suppressed[string(h)] = reason
			return err
		}, `
			SELECT address_hash, min(reason) FROM suppressions WHERE workspace_id = $1 AND channel = $2 AND address_hash = ANY($3::bytea[])
			AND ($4 = 'marketing' OR reason <> 'unsubscribe') GROUP BY address_hash`, req.WorkspaceID, req.Channel, hashes, req.Class)
		if err != nil {
			return nil, EmailSettings{}, "", fmt.Errorf("check suppressions of a batch: %w", err)
		}
		live = keepIf(live, func(it *batchItem) bool {
			if r, ok := suppressed[string(it.hash)]; ok {
				it.status, it.reason = StatusSkipped, "address suppressed ("+r+")"
				return false
			}
			return true
		})
	}
	// One message per address: within the batch (SendGrid refuses a request
	// naming an address twice), and across batches when the caller says.
	seen := map[string]bool{}
	live = keepIf(live, func(it *batchItem) bool {
		a := strings.ToLower(it.addr)
		if seen[a] {
			it.status, it.reason = StatusSkipped, ReasonDuplicateAddress
			return false
		}
		seen[a] = true
		return true
	})
	if req.ClaimAddresses != nil && len(live) > 0 {
		ids := make([]string, len(live))
		hashes := make([][]byte, len(live))
		for i, it := range live {
			ids[i], hashes[i] = req.Recipients[it.i].ProfileID, it.hash
		}
		ok, err := req.ClaimAddresses(ctx, ids, hashes)
		if err != nil {
			return nil, EmailSettings{}, "", fmt.Errorf("claim addresses: %w", err)
		}
		i := 0
		live = keepIf(live, func(it *batchItem) bool {
			defer func() { i++ }()
			if !ok[i] {
				it.status, it.reason = StatusSkipped, ReasonDuplicateAddress
				return false
			}
			return true
		})
	}
	// Render each message.
	live = keepIf(live, func(it *batchItem) bool {
		lk := l.linksFor(SendRequest{WorkspaceID: req.WorkspaceID, ProfileID: req.Recipients[it.i].ProfileID, Channel: req.Channel}, it.d.ID)
		data := template.Data{Journey: map[string]any{}, UnsubscribeURL: lk.unsubscribe, PreferencesURL: lk.preferences}
		var err error
		if data.Profile, err = profileData(it.view); err != nil {
			it.status, it.reason = StatusFailed, err.Error()
			return false
		}
		out, err := compiled.Render(ctx, data)
		switch {
		case err != nil:
			it.status, it.reason = StatusFailed, fmt.Sprintf("render template %q: %v", tpl.Slug, err)
			return false
		case strings.TrimSpace(out.Subject) == "":
			it.status, it.reason = StatusFailed, ReasonEmptySubject
			return false
		case out.HTML == "" && out.Text == "":
			it.status, it.reason = StatusFailed, ReasonEmptyBody
			return false
		}
		it.msg = BatchMessage{
			To: it.addr, Subject: out.Subject, HTML: withPreheader(out.HTML, out.Preheader), Text: out.Text,
			CustomArgs: map[string]string{"parcours_delivery_id": it.d.ID, "parcours_workspace_id": req.WorkspaceID},
		}
		for k, v := range req.CustomArgs {
			it.msg.CustomArgs[k] = v
		}
		it.msg.UnsubscribeURL = lk.unsubscribe
		// As rendered: HTML-escaped in the HTML part (the same for these
		// URLs, whose query is escaped), as they are in the text.
		it.msg.Links = []string{lk.unsubscribe, lk.preferences}
		return true
	})
	return live, settings, key, nil
}

func keepIf(items []*batchItem, keep func(*batchItem) bool) []*batchItem {
	out := items[:0:0]
	for _, it := range items {
		if keep(it) {
			out = append(out, it)
		}
	}
	return out
}

// loadViews loads the profiles (following merges to the survivor) with
// their first email identity, as Send reads them one by one.
func (l *Ledger) loadViews(ctx context.Context, workspaceID string, ids []string) (map[string]*profile.View, error) {
	out := make(map[string]*profile.View, len(ids))
	want := map[string][]string{} // profile to load → requested ids it answers
	for _, id := range ids {
		want[id] = append(want[id], id)
	}
	for hops := 0; len(want) > 0 && hops < 16; hops++ {
		load := make([]string, 0, len(want))
		for id := range want {
			load = append(load, id)
		}
		next := map[string][]string{}
		err := lookup(ctx, l.Pool, func(rows pgx.Rows) error {
			var email string
			p, err := profile.Scan(rows, &email)
			if err != nil {
				return err
			}
			if p.MergedInto != "" {
				next[p.MergedInto] = append(next[p.MergedInto], want[p.ID]...)
				return nil
			}
			v := &profile.View{Profile: p}
			if email != "" {
				v.Identities = []profile.Identity{{Type: identity.Email, Value: email}}
			}
			for _, id := range want[p.ID] {
				out[id] = v
			}
			return nil
		}, `
			SELECT `+profile.Columns+`, coalesce((SELECT i.value FROM identities i WHERE i.workspace_id = p.workspace_id AND i.profile_id = p.id
				AND i.type = $3 ORDER BY i.created_at, i.value LIMIT 1), '')
			FROM profiles p WHERE p.workspace_id = $1 AND p.id = ANY($2::uuid[])`, workspaceID, load, identity.Email)
		if err != nil {
			return nil, fmt.Errorf("load profiles of a batch: %w", err)
		}
		want = next
	}
	return out, nil
}

// admitBatch applies the workspace's delivery policy to the members of a
// marketing request and marks the admitted ones in flight (compare-and-set
// on the attempt), in one transaction under the advisory locks Send's admit
// takes, so that a journey's send to the same person at the same moment
// cannot pass a cap this batch fills. A recipient the policy holds back is
// recorded skipped with the reason (frequency_cap, quiet_hours): a batch
// does not wait for one person. It returns the rows this attempt owns.
func (l *Ledger) admitBatch(ctx context.Context, req BatchRequest, send []*batchItem, members []int) (map[string]bool, error) {
	items := make([]*batchItem, len(members))
	for i, m := range members {
		items[i] = send[m]
	}
	won := make(map[string]bool, len(items))
	var held []*batchItem
	err := lookups(ctx, l.Pool, func(tx pgx.Tx) error {
		admitted := items
		if req.Class == Marketing {
			pol, err := loadPolicy(ctx, tx, req.WorkspaceID)
			if err != nil {
				return err
			}
			caps, quiet := pol.rulesFor(req.Channel)
			if len(caps) > 0 || quiet != nil {
				sent, err := l.policySent(ctx, tx, req, items, len(caps) > 0, caps)
				if err != nil {
					return err
				}
				now := policyNow(time.Time{})
				admitted = nil
				for _, it := range items {
					tz, _ := it.view.Traits["timezone"].(string)
					dec := decide(now, pol.zone(tz), caps, quiet, sent[req.Recipients[it.i].ProfileID])
					if dec.Reason != "" {
						it.status, it.reason = StatusSkipped, dec.Reason
						held = append(held, it)
					} else {
						admitted = append(admitted, it)
					}
				}
			}
		}
		if err := l.recordHeld(ctx, tx, req.WorkspaceID, held); err != nil {
			return err
		}
		if len(admitted) == 0 {
			return nil
		}
		ids := make([]string, len(admitted))
		attempts := make([]int32, len(admitted))
		hashes := make([][]byte, len(admitted))
		templates := make([]*string, len(admitted))
		for i, it := range admitted {
			ids[i], attempts[i], hashes[i] = it.d.ID, int32(it.d.Attempts), it.hash
			if it.d.TemplateID != "" {
				templates[i] = &it.d.TemplateID
			}
		}
		rows, err := tx.Query(ctx, `
			UPDATE deliveries d SET in_flight = true, address_hash = x.h, template_id = x.t, deferred_until = NULL, updated_at = now()
			FROM unnest($2::uuid[], $3::int[], $4::bytea[], $5::uuid[]) AS x(did, a, h, t)
			WHERE d.workspace_id = $1 AND d.id = x.did AND d.attempts = x.a AND d.status = 'claimed' AND NOT d.in_flight
			RETURNING d.id::text`, req.WorkspaceID, ids, attempts, hashes, templates)
		if err != nil {
			return err
		}
		ours, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range ours {
			won[id] = true
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("admit a batch: %w", err)
	}
	for _, it := range items {
		if !won[it.d.ID] && it.status == "" {
			it.d.Reason = "another attempt took over this delivery"
		}
	}
	return won, nil
}

// policySent locks the recipients' sends (sorted, as Send's admit locks one)
// when caps apply, and returns the times of the marketing messages the caps
// count, per recipient profile (ascending).
func (l *Ledger) policySent(ctx context.Context, tx pgx.Tx, req BatchRequest, items []*batchItem, lock bool, caps []capWindow) (map[string][]time.Time, error) {
	out := map[string][]time.Time{}
	if !lock {
		return out, nil
	}
	profiles := make([]string, len(items))
	keys := make([]string, len(items))
	own := make([]string, len(items))
	for i, it := range items {
		p := req.Recipients[it.i].ProfileID
		profiles[i], keys[i], own[i] = p, req.WorkspaceID+"/"+p+"/"+req.Channel, it.d.ID
	}
	slices.Sort(keys)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(k)) FROM (SELECT unnest($2::text[]) AS k ORDER BY 1) s`, sendLockClass, keys); err != nil {
		return nil, fmt.Errorf("lock sends of a batch: %w", err)
	}
	longest := time.Duration(0)
	for _, c := range caps {
		longest = max(longest, c.per)
	}
	rows, err := tx.Query(ctx, `
		SELECT profile_id::text, coalesce(sent_at, updated_at) AS at FROM deliveries
		WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[]) AND channel = $3 AND class = 'marketing' AND NOT (id = ANY($4::uuid[]))
		  AND (status IN ('sent', 'unknown') OR (status = 'claimed' AND in_flight))
		  AND coalesce(sent_at, updated_at) > $5
		ORDER BY at`, req.WorkspaceID, profiles, req.Channel, own, policyNow(time.Time{}).Add(-longest))
	if err != nil {
		return nil, fmt.Errorf("count deliveries of a batch: %w", err)
	}
	var p string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&p, &at}, func() error { out[p] = append(out[p], at); return nil }); err != nil {
		return nil, fmt.Errorf("count deliveries of a batch: %w", err)
	}
	return out, nil
}

// recordHeld records, in tx, the recipients a policy held back as skipped.
func (l *Ledger) recordHeld(ctx context.Context, tx pgx.Tx, workspaceID string, held []*batchItem) error {
	if len(held) == 0 {
		return nil
	}
	ids := make([]string, len(held))
	attempts := make([]int32, len(held))
	reasons := make([]string, len(held))
	hashes := make([][]byte, len(held))
	byID := make(map[string]*batchItem, len(held))
	for i, it := range held {
		ids[i], attempts[i], reasons[i], hashes[i] = it.d.ID, int32(it.d.Attempts), it.reason, it.hash
		byID[it.d.ID] = it
	}
	rows, err := tx.Query(ctx, `
		UPDATE deliveries d SET status = 'skipped', reason = x.r, address_hash = x.h, deferred_until = NULL, updated_at = now()
		FROM unnest($2::uuid[], $3::int[], $4::text[], $5::bytea[]) AS x(did, a, r, h)
		WHERE d.workspace_id = $1 AND d.id = x.did AND d.attempts = x.a AND d.status = 'claimed' AND NOT d.in_flight
		RETURNING `+batchCols, workspaceID, ids, attempts, reasons, hashes)
	if err != nil {
		return err
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanBatch(r) })
	for _, d := range ds {
		byID[d.ID].d = d
	}
	return err
}

// finishBatch records each item's status and reason (providerID on sent
// ones) and refreshes the items' deliveries.
func (l *Ledger) finishBatch(ctx context.Context, workspaceID string, items []*batchItem, providerID string) error {
	if len(items) == 0 {
		return nil
	}
	ids := make([]string, len(items))
	statuses := make([]string, len(items))
	reasons := make([]string, len(items))
	templates := make([]*string, len(items))
	byID := make(map[string]*batchItem, len(items))
	for i, it := range items {
		ids[i], statuses[i], reasons[i] = it.d.ID, it.status, it.reason
		if it.d.TemplateID != "" {
			templates[i] = &it.d.TemplateID
		}
		byID[it.d.ID] = it
	}
	err := lookup(ctx, l.Pool, func(r pgx.Rows) error {
		d, err := scanBatch(r)
		if err == nil {
			byID[d.ID].d = d
		}
		return err
	}, `
		UPDATE deliveries d SET status = x.s, reason = x.r, provider_message_id = CASE WHEN x.s = 'sent' THEN $6 ELSE '' END,
			in_flight = false, updated_at = now(), sent_at = CASE WHEN x.s = 'sent' THEN now() END,
			template_id = coalesce(x.t, d.template_id)
		FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[]) AS x(did, s, r, t)
		WHERE d.workspace_id = $1 AND d.id = x.did RETURNING `+batchCols, workspaceID, ids, statuses, reasons, templates, providerID)
	if err != nil {
		return fmt.Errorf("record a batch of %d deliveries: %w", len(items), err)
	}
	return nil
}
