package soak

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

// Nodes of the welcome scenario that send, and the subjects that tell them
// apart in the fake's log.
const (
	nodeWelcome = "welcome"
	nodeTips    = "tips"
	// nodePro is R20's third email, to the people on the pro plan.
	nodePro = "pro"
)

// tenant is one scenario's workspace, made through the public surfaces only:
// `parcours bootstrap` for the keys, then the HTTP API for the email
// channel (pointing at the scenario's own fake SendGrid), the templates and
// the welcome journey, whose runs each send two emails separated by a wait.
type tenant struct {
	rig       *Rig
	api       *apiClient
	Slug      string
	ID        string
	admin     string
	write     string
	JourneyID string
	Fake      *FakeSendGrid
	Traffic   *Traffic
	// withPro: the journey sends a third email (nodePro) to people on the
	// pro plan, and every other sign-up (even-numbered users) is on it.
	withPro bool
}

// newTenant creates a workspace and its keys with `parcours bootstrap`.
func (r *Rig) newTenant(ctx context.Context, slug string) (*tenant, error) {
	t := &tenant{rig: r, api: newAPIClient(r.APIURL), Slug: slug, Traffic: &Traffic{}}
	var err error
	if t.ID, t.admin, t.write, err = r.Bootstrap(ctx, slug); err != nil {
		return nil, err
	}
	return t, nil
}

// newWelcomeTenant creates the workspace and publishes the welcome
// scenario with its wait shortened to wait.
func (r *Rig) newWelcomeTenant(ctx context.Context, slug, wait string) (*tenant, error) {
	t, err := r.newTenant(ctx, slug)
	if err != nil {
		return nil, err
	}
	if err := t.setUpEmail(ctx); err != nil {
		return nil, err
	}
	var created struct {
		Journey struct {
			ID string `json:"id"`
		} `json:"journey"`
		Missing []string `json:"missing"`
	}
	if err := t.api.admin(ctx, http.MethodPost, "/v1/journeys/scenarios/welcome", t.admin,
		map[string]any{"durations": map[string]string{"wait_2_days": wait}}, 201, &created); err != nil {
		t.Fake.Close()
		return nil, fmt.Errorf("set up %s: %w", slug, err)
	}
	if len(created.Missing) > 0 {
		t.Fake.Close()
		return nil, fmt.Errorf("set up %s: the welcome scenario still misses %v", slug, created.Missing)
	}
	t.JourneyID = created.Journey.ID
	return t, t.publish(ctx)
}

// newProWelcomeTenant is a welcome tenant whose journey also sends a third
// email to the people on the pro plan (half the sign-ups): 2.5 emails a run.
func (r *Rig) newProWelcomeTenant(ctx context.Context, slug, wait string) (*tenant, error) {
	t, err := r.newTenant(ctx, slug)
	if err != nil {
		return nil, err
	}
	t.withPro = true
	if err := t.setUpEmail(ctx); err != nil {
		return nil, err
	}
	if err := t.api.admin(ctx, http.MethodPost, "/v1/templates", t.admin, map[string]any{"slug": "welcome-pro", "name": "Pro", "channel": "email",
		"subject": "Pro tips for {{ profile.traits.first_name }}", "html": "<p>Pro</p>", "text": "Pro"}, 201, nil); err != nil {
		t.Fake.Close()
		return nil, fmt.Errorf("set up %s: %w", slug, err)
	}
	def := map[string]any{
		"name":    "Welcome series, pro",
		"trigger": map[string]any{"type": "event", "event": "Signed Up"},
		"entry":   map[string]any{"re_entry": "once"},
		"start":   nodeWelcome,
		"nodes": []map[string]any{
			{"id": nodeWelcome, "type": "send", "channel": "email", "template": "welcome", "next": "wait"},
			{"id": "wait", "type": "wait", "duration": wait, "next": nodeTips},
			{"id": nodeTips, "type": "send", "channel": "email", "template": "welcome-tips", "next": "plan"},
			{"id": "plan", "type": "branch", "branches": []map[string]any{{"condition": `profile.traits.plan == "pro"`, "next": nodePro}}, "else": "done"},
			{"id": nodePro, "type": "send", "channel": "email", "template": "welcome-pro", "next": "done"},
			{"id": "done", "type": "exit"},
		},
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := t.api.admin(ctx, http.MethodPost, "/v1/journeys", t.admin, def, 201, &created); err != nil {
		t.Fake.Close()
		return nil, fmt.Errorf("set up %s: %w", slug, err)
	}
	t.JourneyID = created.ID
	return t, t.publish(ctx)
}

func (t *tenant) publish(ctx context.Context) error {
	if err := t.api.admin(ctx, http.MethodPost, "/v1/journeys/"+t.JourneyID+"/publish", t.admin, nil, 200, nil); err != nil {
		t.Fake.Close()
		return fmt.Errorf("set up %s: %w", t.Slug, err)
	}
	return nil
}

// setUpEmail starts the tenant's fake SendGrid, points the email channel
// at it and creates the welcome and tips templates.
func (t *tenant) setUpEmail(ctx context.Context) error {
	apiKey := "SG.soak-" + t.Slug
	var err error
	if t.Fake, err = StartFakeSendGrid(apiKey); err != nil {
		return err
	}
	steps := []struct {
		method, path string
		body         any
		want         int
	}{
		{http.MethodPut, "/v1/channels/email", map[string]any{"api_key": apiKey, "from_email": "hello@shop.example", "from_name": "Soak", "base_url": t.Fake.URL}, 200},
		{http.MethodPost, "/v1/templates", map[string]any{"slug": "welcome", "name": "Welcome", "channel": "email",
			"subject": "Welcome {{ profile.traits.first_name }}", "html": "<p>Welcome</p>", "text": "Welcome"}, 201},
		{http.MethodPost, "/v1/templates", map[string]any{"slug": "welcome-tips", "name": "Tips", "channel": "email",
			"subject": "Tips for {{ profile.traits.first_name }}", "html": "<p>Tips</p>", "text": "Tips"}, 201},
	}
	for _, s := range steps {
		if err := t.api.admin(ctx, s.method, s.path, t.admin, s.body, s.want, nil); err != nil {
			t.Fake.Close()
			return fmt.Errorf("set up %s: %w", t.Slug, err)
		}
	}
	return nil
}

// pro says whether user is on the pro plan in a withPro tenant.
func (t *tenant) pro(user string) bool {
	var n int
	_, err := fmt.Sscanf(user, "u%d", &n)
	return t.withPro && err == nil && n%2 == 0
}

// sends are the nodes that email user.
func (t *tenant) sends(user string) []string {
	if t.pro(user) {
		return []string{nodeWelcome, nodeTips, nodePro}
	}
	return []string{nodeWelcome, nodeTips}
}

func (t *tenant) Close() {
	if t.Fake != nil {
		t.Fake.Close()
	}
}

// email is the address of a soak user.
func (t *tenant) email(user string) string { return user + "@" + t.Slug + ".soak.example" }

// enter identifies user with an email and sends "Signed Up", which starts
// a welcome run; each record is retried with its messageId until acked.
func (t *tenant) enter(ctx context.Context, user string, giveUp time.Time) bool {
	if !t.api.send(ctx, t.Traffic, t.write, "/v1/identify", []Record{{"messageId": "id-" + user, "userId": user,
		"traits": t.traits(user)}}, giveUp) {
		return false
	}
	return t.api.send(ctx, t.Traffic, t.write, "/v1/track", []Record{{"messageId": "su-" + user, "userId": user, "event": "Signed Up"}}, giveUp)
}

func (t *tenant) traits(user string) map[string]any {
	tr := map[string]any{"email": t.email(user), "first_name": user}
	if t.pro(user) {
		tr["plan"] = "pro"
	}
	return tr
}

// userOf reads the soak user and the node back from a message the fake
// took: the address names the user, the subject the template.
func (t *tenant) userOf(r Request) (user, node string) {
	user = strings.TrimSuffix(r.To, "@"+t.Slug+".soak.example")
	switch {
	case strings.HasPrefix(r.Subject, "Welcome "):
		node = nodeWelcome
	case strings.HasPrefix(r.Subject, "Tips for "):
		node = nodeTips
	case strings.HasPrefix(r.Subject, "Pro tips for "):
		node = nodePro
	}
	return user, node
}

// runStatus counts the journey's runs and those that ended as completed.
func (t *tenant) runStatus(ctx context.Context) (runs, completed, ended int, err error) {
	err = t.rig.Pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE end_reason = 'completed'), count(*) FILTER (WHERE ended_at IS NOT NULL)
		FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2`, t.ID, t.JourneyID).Scan(&runs, &completed, &ended)
	return runs, completed, ended, err
}

// waitRuns waits until want runs exist and all of them ended.
func (t *tenant) waitRuns(ctx context.Context, want int, timeout time.Duration) error {
	var runs, ended int
	err := waitUntil(ctx, timeout, fmt.Sprintf("%d welcome runs to end", want), func() (bool, error) {
		var err error
		runs, _, ended, err = t.runStatus(ctx)
		if err != nil {
			return false, nil // PostgreSQL may be restarting
		}
		return runs >= want && ended >= runs, nil
	})
	if err != nil {
		return fmt.Errorf("%w (%d runs, %d ended)", err, runs, ended)
	}
	return nil
}

// checkTemporal describes every run in Temporal: each must be completed.
func (t *tenant) checkTemporal(ctx context.Context) ([]string, error) {
	rows, err := t.rig.Pool.Query(ctx, `SELECT workflow_id, run_id FROM journey_runs WHERE workspace_id = $1 AND journey_id = $2`, t.ID, t.JourneyID)
	if err != nil {
		return nil, err
	}
	type run struct{ wf, run string }
	var runs []run
	for rows.Next() {
		var r run
		if err := rows.Scan(&r.wf, &r.run); err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var problems []string
	// A run records its end in PostgreSQL, then completes: give the last
	// workflow task a moment.
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range runs {
		for {
			d, err := t.rig.TC.DescribeWorkflowExecution(ctx, r.wf, r.run)
			if err != nil {
				problems = append(problems, fmt.Sprintf("describe %s: %v", r.wf, err))
				break
			}
			st := d.WorkflowExecutionInfo.Status
			if st == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				break
			}
			if st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || time.Now().After(deadline) {
				problems = append(problems, fmt.Sprintf("run %s is %s in Temporal", r.wf, st))
				break
			}
			select {
			case <-ctx.Done():
				return problems, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return problems, nil
}

// Sends are the figures of one scenario's messages.
type Sends struct {
	Expected   int // (user, node) steps that should have produced a message
	Sent       int // messages the provider took, duplicates included
	Duplicated int // messages beyond the first for a step
	Unknown    int // deliveries left unknown: the documented window
	Failed     int // deliveries refused for good by the provider
	Problems   []string
}

// delivery is one ledger row as the soak reads it.
type delivery struct {
	id, status, node, reason, user string
	attempts                       int
}

func (t *tenant) deliveries(ctx context.Context) (map[string]delivery, error) {
	rows, err := t.rig.Pool.Query(ctx, `
		SELECT d.id::text, d.status, coalesce(d.node_id, ''), d.reason, d.attempts, coalesce(i.value, '')
		FROM deliveries d
		LEFT JOIN identities i ON i.workspace_id = d.workspace_id AND i.profile_id = d.profile_id AND i.type = 'user_id'
		WHERE d.workspace_id = $1`, t.ID)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]delivery{}
	for rows.Next() {
		var d delivery
		if err := rows.Scan(&d.id, &d.status, &d.node, &d.reason, &d.attempts, &d.user); err != nil {
			return nil, err
		}
		out[d.id] = d
	}
	return out, rows.Err()
}

// checkSends compares what the fake SendGrid took with what the journeys
// should have sent to users (two messages each) and with the ledger. A
// message counts once per step, by its business meaning (the user and the
// node, read from the address and the subject) and by its delivery id;
// more is a duplicate. A step whose delivery is unknown (a worker died
// between the provider's answer and the ledger) may have been taken once
// or not at all; any other step must have been taken exactly once, and a
// delivery recorded as sent must be in the fake's log.
func (t *tenant) checkSends(ctx context.Context, users []string, failing map[string]bool) (Sends, error) {
	var s Sends
	ds, err := t.deliveries(ctx)
	if err != nil {
		return s, err
	}
	type step struct{ user, node string }
	byStep := map[step][]delivery{}
	for _, d := range ds {
		byStep[step{d.user, d.node}] = append(byStep[step{d.user, d.node}], d)
	}
	taken := map[step]int{}
	takenByID := map[string]int{}
	for _, r := range t.Fake.Taken() {
		u, n := t.userOf(r)
		taken[step{u, n}]++
		takenByID[r.DeliveryID]++
		s.Sent++
	}
	problem := func(format string, a ...any) {
		if len(s.Problems) < 20 {
			s.Problems = append(s.Problems, fmt.Sprintf(format, a...))
		}
	}
	expected := map[step]bool{}
	for _, u := range users {
		for _, n := range t.sends(u) {
			st := step{u, n}
			expected[st] = true
			rows := byStep[st]
			if len(rows) != 1 {
				problem("%s/%s has %d deliveries in the ledger, want 1", u, n, len(rows))
				continue
			}
			d := rows[0]
			if failing[u] {
				if d.status != "failed" {
					problem("%s/%s is %s, want failed (the provider refused the address)", u, n, d.status)
				} else {
					s.Failed++
				}
				if taken[st] > 0 {
					problem("%s/%s was taken %d times although the provider refuses the address", u, n, taken[st])
				}
				continue
			}
			s.Expected++
			c := taken[st]
			if c > 1 {
				s.Duplicated += c - 1
			}
			switch d.status {
			case "sent":
				if c != 1 {
					problem("%s/%s: the ledger says sent, the provider took it %d times", u, n, c)
				}
				if takenByID[d.id] != 1 {
					problem("%s/%s: delivery %s taken %d times under its id", u, n, d.id, takenByID[d.id])
				}
			case "unknown":
				s.Unknown++
				if c > 1 {
					problem("%s/%s: unknown delivery taken %d times (marketing is at most once)", u, n, c)
				}
			default:
				problem("%s/%s is %s (%s), want sent", u, n, d.status, d.reason)
			}
		}
	}
	var stray []string
	for st, c := range taken {
		if !expected[st] {
			stray = append(stray, fmt.Sprintf("%s/%s×%d", st.user, st.node, c))
		}
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		problem("messages nobody should have had: %s", strings.Join(stray, " "))
	}
	if s.Duplicated > 0 {
		problem("%d duplicate sends", s.Duplicated)
	}
	return s, nil
}

// checkEvents compares acknowledged messageIds with the events stored.
func (t *tenant) checkEvents(ctx context.Context) (accepted, stored, lost, duplicated int, err error) {
	acked := t.Traffic.Acked()
	rows, err := t.rig.Pool.Query(ctx, `SELECT message_id, count(*) FROM events WHERE workspace_id = $1 GROUP BY message_id`, t.ID)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("count events: %w", err)
	}
	defer rows.Close()
	have := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return 0, 0, 0, 0, err
		}
		have[id] = n
		stored += n
		duplicated += n - 1
	}
	if err := rows.Err(); err != nil {
		return 0, 0, 0, 0, err
	}
	seen := map[string]bool{}
	for _, id := range acked {
		if seen[id] {
			continue // a retry acknowledged twice is one record
		}
		seen[id] = true
		if have[id] == 0 {
			lost++
		}
	}
	return len(seen), stored, lost, duplicated, nil
}
