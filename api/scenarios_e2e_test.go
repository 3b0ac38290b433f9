package api_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/channel"
	"github.com/parcours/parcours/pkg/channel/channeltest"
)

// The four scenario templates end to end, each created with one API call
// (waits shortened to seconds through the call's durations), run by the
// real Temporal server and worker, sending through the delivery ledger to
// SendGrid's wire format on a local fake: exactly the expected emails to
// the expected people, nothing to people who exit or convert.

// scenarioEnv configures email, saves the templates and creates and
// publishes the scenario; it answers the journey id and the fake.
func scenarioEnv(t *testing.T, e *env, name string, durations map[string]string, templates map[string]string, sgPublicKey string) (string, *channeltest.SendGrid) {
	t.Helper()
	fake := channeltest.NewSendGrid(t, "SG.scenario")
	settings := map[string]any{"api_key": "SG.scenario", "from_email": "hello@shop.example", "base_url": fake.URL}
	if sgPublicKey != "" {
		settings["event_webhook_public_key"] = sgPublicKey
	}
	if status, _, body := e.call(t, "PUT", "/v1/channels/email", e.admin, settings); status != 200 {
		t.Fatalf("email channel: %d %v", status, body)
	}
	for slug, subject := range templates {
		if status, _, body := e.call(t, "POST", "/v1/templates", e.admin, map[string]any{"slug": slug, "name": slug, "channel": "email",
			"subject": subject, "html": "<p>" + subject + "</p>", "text": subject}); status != 201 {
			t.Fatalf("template %s: %d %v", slug, status, body)
		}
	}
	status, _, out := e.call(t, "POST", "/v1/journeys/scenarios/"+name, e.admin, map[string]any{"durations": durations})
	if status != 201 {
		t.Fatalf("scenario %s: %d %v", name, status, out)
	}
	if missing := toStrings(out["missing"]); len(missing) != 0 {
		t.Fatalf("scenario %s still misses %v", name, missing)
	}
	id := out["journey"].(map[string]any)["id"].(string)
	if status, _, body := e.call(t, "POST", "/v1/journeys/"+id+"/publish", e.admin, nil); status != 200 {
		t.Fatalf("publish %s: %d %v", name, status, body)
	}
	return id, fake
}

// inbox maps each recipient to the subjects received, in order.
func inbox(fake *channeltest.SendGrid) map[string][]string {
	out := map[string][]string{}
	for _, m := range fake.Accepted() {
		to := m.Personalizations[0].To[0].Email
		out[to] = append(out[to], m.Subject)
	}
	return out
}

func (e *env) waitForEnded(t *testing.T, journeyID string, n int) map[string]string {
	t.Helper()
	e.waitFor(t, "the runs to end", func() bool {
		rs := e.runs(t, journeyID)
		ended := 0
		for _, r := range rs {
			if r["ended_at"] != nil {
				ended++
			}
		}
		return len(rs) == n && ended == n
	})
	reasons := map[string]string{}
	for _, r := range e.runs(t, journeyID) {
		reasons[r["profile_id"].(string)] = r["end_reason"].(string)
	}
	return reasons
}

func (e *env) identify(t *testing.T, users ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, u := range users {
		e.mustSend(t, e.write, "/v1/identify", map[string]any{"userId": u, "traits": map[string]any{"email": u + "@example.com", "first_name": u}})
		ids[u] = e.profileBy(t, "userId="+u)["id"].(string)
	}
	return ids
}

func TestScenarioAbandonedCartRescue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, fake := scenarioEnv(t, e, "abandoned_cart", map[string]string{"wait_order": "4s", "wait_day": "6s"},
		map[string]string{"cart-rescue-1": "Your cart is waiting", "cart-rescue-coupon": "10% off your {{ event.properties.total }} € cart"}, "")
	p := e.identify(t, "ana", "bob", "carl", "dee")
	cart := func(user, id string, total float64) {
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": user, "event": "Cart Updated", "properties": map[string]any{"cart_id": id, "total": total}})
	}
	order := func(user, id string) {
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": user, "event": "Order Completed", "properties": map[string]any{"cart_id": id, "total": 40}})
	}
	cart("ana", "c1", 40) // abandons: both emails
	cart("bob", "c2", 30) // orders within the hour: nothing
	cart("carl", "c3", 10)
	cart("dee", "c4", 0) // an empty cart: the trigger filter keeps her out
	order("bob", "c2")
	// Carl orders after the first email, during the day's wait: one email only.
	e.waitFor(t, "carl's first email", func() bool { return len(inbox(fake)["carl@example.com"]) == 1 })
	order("carl", "c3")

	reasons := e.waitForEnded(t, id, 3)
	if reasons[p["ana"]] != "completed" || reasons[p["bob"]] != "exited:order_completed" || reasons[p["carl"]] != "exited:order_completed" {
		t.Fatalf("end reasons %v for %v; inbox %v", reasons, p, inbox(fake))
	}
	got := inbox(fake)
	if len(got) != 2 || strings.Join(got["ana@example.com"], "|") != "Your cart is waiting|10% off your 40 € cart" ||
		strings.Join(got["carl@example.com"], "|") != "Your cart is waiting" {
		t.Fatalf("inbox %v", got)
	}
}

func TestScenarioResendToNonOpeners(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newSGKey(t)
	id, fake := scenarioEnv(t, e, "resend_non_openers", map[string]string{"wait_open": "4s"},
		map[string]string{"newsletter": "Our November news", "newsletter-resend": "In case you missed it: our November news"}, k.public)
	p := e.identify(t, "ana", "bob", "carl")
	for _, u := range []string{"ana", "bob", "carl"} {
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": u, "event": "Newsletter Scheduled"})
	}
	e.waitFor(t, "three newsletters", func() bool { return len(fake.Accepted()) == 3 })
	// Bob opens it; Carl's "open" is his mail client's privacy proxy, which does not count.
	delivery := func(profileID string) channel.Delivery {
		_, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+profileID, e.admin, nil)
		d := ds["data"].([]any)[0].(map[string]any)
		return channel.Delivery{ID: d["id"].(string), ProviderMessageID: d["provider_message_id"].(string)}
	}
	events := []any{
		sgEvent(delivery(p["bob"]), e.ws.ID, "open", "open-bob", map[string]any{"email": "bob@example.com"}),
		sgEvent(delivery(p["carl"]), e.ws.ID, "open", "open-carl", map[string]any{"email": "carl@example.com", "sg_machine_open": true}),
	}
	if status, body := e.postSigned(t, k, mustJSON(t, events)); status != 200 {
		t.Fatalf("event webhook: %d %v", status, body)
	}

	e.waitForEnded(t, id, 3)
	got := inbox(fake)
	var people []string
	for to, subjects := range got {
		people = append(people, to+"="+strings.Join(subjects, "|"))
	}
	sort.Strings(people)
	want := "ana@example.com=Our November news|In case you missed it: our November news " +
		"bob@example.com=Our November news " +
		"carl@example.com=Our November news|In case you missed it: our November news"
	if strings.Join(people, " ") != want {
		t.Fatalf("inbox\n%s\nwant\n%s", strings.Join(people, "\n"), strings.ReplaceAll(want, " ", "\n"))
	}
}

func TestScenarioWelcomeSeries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, fake := scenarioEnv(t, e, "welcome", map[string]string{"wait_2_days": "3s"},
		map[string]string{"welcome": "Welcome {{ profile.traits.first_name }}", "welcome-tips": "Three tips to start"}, "")
	p := e.identify(t, "ana", "bob", "carl")
	for _, u := range []string{"ana", "bob", "carl"} {
		e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": u, "event": "Signed Up"})
	}
	// Bob orders during the wait: the goal ends his run, no tips.
	e.waitFor(t, "three welcomes", func() bool { return len(fake.Accepted()) == 3 })
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "bob", "event": "Order Completed", "properties": map[string]any{"total": 25}})
	// Carl unsubscribes during the wait: the tips are skipped, with the reason.
	if status, _, body := e.call(t, "PUT", "/v1/profiles/"+p["carl"]+"/subscriptions/email", e.admin, map[string]any{"purpose": "marketing", "status": "unsubscribed"}); status != 200 {
		t.Fatalf("unsubscribe: %d %v", status, body)
	}
	reasons := e.waitForEnded(t, id, 3)
	if reasons[p["bob"]] != "goal" || reasons[p["ana"]] != "completed" || reasons[p["carl"]] != "completed" {
		t.Fatalf("end reasons %v", reasons)
	}
	got := inbox(fake)
	if strings.Join(got["ana@example.com"], "|") != "Welcome ana|Three tips to start" ||
		strings.Join(got["bob@example.com"], "|") != "Welcome bob" || strings.Join(got["carl@example.com"], "|") != "Welcome carl" {
		t.Fatalf("inbox %v", got)
	}
	_, _, ds := e.call(t, "GET", "/v1/deliveries?profile_id="+p["carl"], e.admin, nil)
	skipped := 0
	for _, d := range ds["data"].([]any) {
		if d := d.(map[string]any); d["status"] == "skipped" && strings.Contains(d["reason"].(string), "unsubscribed") {
			skipped++
		}
	}
	if skipped != 1 {
		t.Fatalf("carl's deliveries %v: want the tips skipped as unsubscribed", ds["data"])
	}
	// Bob's conversion is credited to the welcome email.
	var node string
	var revenue float64
	if err := e.pool.QueryRow(t.Context(), `SELECT node_id, revenue FROM journey_conversions WHERE profile_id = $1`, p["bob"]).Scan(&node, &revenue); err != nil || node != "welcome" || revenue != 25 {
		t.Fatalf("bob's conversion: %q %v %v", node, revenue, err)
	}
}

func TestScenarioThankYouNewCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSegment(t, "customers", `profile.order_count >= 1`)
	id, fake := scenarioEnv(t, e, "thank_you", nil, map[string]string{"thank-you": "Thank you for your first order"}, "")
	e.identify(t, "ana", "bob")
	e.mustSend(t, e.write, "/v1/page", map[string]any{"userId": "bob", "name": "Home"}) // a prospect still
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"total": 30}})
	e.waitForEnded(t, id, 1)
	e.mustSend(t, e.write, "/v1/track", map[string]any{"userId": "ana", "event": "Order Completed", "properties": map[string]any{"total": 40}})
	time.Sleep(500 * time.Millisecond) // a second order must not start a second run
	if got := inbox(fake); len(got) != 1 || strings.Join(got["ana@example.com"], "|") != "Thank you for your first order" {
		t.Fatalf("inbox %v", got)
	}
	if n := len(e.runs(t, id)); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}
