// Package demo loads a small fictional shop into a workspace, so that a
// person trying Parcours sees profiles, segments and journeys at work
// before wiring their own sources: about 200 people seen on the website,
// at the shop tills and by the call centre over the last seven days.
//
// The records go through the ingestion path the HTTP API uses (Segment
// parsing, the workspace's validation rules, identity resolution, real-time
// segments), so merges, states and segment memberships are real. Every
// record has a fixed messageId: loading again adds nothing twice.
package demo

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Sources the demo records come from, as a write key's source names them.
const (
	SourceWeb        = "web"
	SourceStore      = "store"
	SourceCallCentre = "call_centre"
)

// loadOrder is the order sources are ingested in: the shop's customer file
// first, then calls, then the website, so that identity resolution has
// something to merge (a visitor browsing anonymously, then signing in with
// the email the shop already knows, is two profiles becoming one).
var loadOrder = []string{SourceStore, SourceCallCentre, SourceWeb}

// Record is one demo record in the Segment format, from one source.
type Record struct {
	Source string
	At     time.Time
	// Body is the record as a Segment library would send it.
	Body map[string]any
}

// EmailEvent is a newsletter open or click, recorded as the SendGrid event
// webhook records one: on the profile that holds the email address.
type EmailEvent struct {
	Email      string
	MessageID  string
	Event      string // Email Opened or Email Clicked
	At         time.Time
	Properties map[string]any
}

// Dataset is the whole demo shop.
type Dataset struct {
	Records     []Record
	EmailEvents []EmailEvent
}

// product is an item of the shop's catalogue.
type product struct {
	ID, Name, Category string
	Price              float64
}

// The shop: Lumen & Co, homeware, three shops and a website.
var (
	catalogue = []product{
		{"LMP-01", "Brass desk lamp", "Lighting", 89},
		{"LMP-02", "Linen pendant shade", "Lighting", 54},
		{"CER-01", "Stoneware mug", "Tableware", 18},
		{"CER-02", "Set of four plates", "Tableware", 64},
		{"TXT-01", "Wool throw", "Textiles", 120},
		{"TXT-02", "Linen cushion cover", "Textiles", 32},
		{"CND-01", "Fig candle", "Candles", 26},
		{"CND-02", "Cedar candle", "Candles", 26},
		{"KIT-01", "Oak chopping board", "Kitchen", 45},
		{"KIT-02", "Copper kettle", "Kitchen", 98},
		{"GRD-01", "Terracotta planter", "Garden", 38},
		{"GRD-02", "Watering can", "Garden", 29},
	}
	shops      = []string{"Lyon Presqu'île", "Nantes Graslin", "Lille Vieux-Lille"}
	referrers  = []string{"https://www.google.com/", "https://www.instagram.com/", "", "https://www.pinterest.com/", ""}
	firstNames = []string{"Ana", "Louis", "Chloe", "Hugo", "Emma", "Jules", "Lea", "Nathan", "Manon", "Lucas",
		"Ines", "Adam", "Sarah", "Tom", "Camille", "Noah", "Zoe", "Ethan", "Alice", "Gabriel",
		"Lina", "Arthur", "Jade", "Paul", "Rose", "Victor", "Clara", "Sacha", "Eva", "Malo"}
	lastNames = []string{"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
		"Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
		"Morel", "Girard", "Andre", "Mercier", "Dupont", "Lambert", "Bonnet", "Francois", "Martinez", "Legrand"}
	callReasons = []struct{ Reason, Notes string }{
		{"delivery", "Asked when the order arrives; gave the tracking link."},
		{"product question", "Wanted to know if the wool throw is machine washable (it is not: dry clean)."},
		{"return", "Returning a mug that arrived chipped; return label sent by email."},
		{"loyalty card", "Lost the loyalty card; a new one will be posted, points kept."},
		{"store hours", "Asked for the Sunday opening hours of the Lyon shop."},
		{"gift", "Looking for a wedding gift under 100 euros; suggested the copper kettle."},
	}
)

// The people, by where Parcours sees them. The groups are fixed (not drawn
// at random) so that every state and every merge path is present.
type group int

const (
	webAnonymous  group = iota // browses, never says who they are: anonymous
	webSignUp                  // browses, then signs up on the website: known
	webAndStore                // a shop customer who also browses and signs in: merged, omnichannel
	storeOnly                  // buys in a shop only: known
	storeAndCalls              // buys in a shop and calls the call centre: merged, omnichannel
	callsOnly                  // calls only, by phone: anonymous (phone is not the unique identifier)
	groupsEnd
)

// groupSizes is how many people each group has: 200 in all.
var groupSizes = [groupsEnd]int{webAnonymous: 60, webSignUp: 40, webAndStore: 40, storeOnly: 25, storeAndCalls: 20, callsOnly: 15}

type person struct {
	n                     int
	group                 group
	first, last           string
	email, phone          string
	customerNumber        string
	anonymousID, callerID string
}

func people() []person {
	var out []person
	n := 0
	for g := group(0); g < groupsEnd; g++ {
		for range groupSizes[g] {
			// first and last name pairs are distinct for n < 900.
			first, last := firstNames[n%len(firstNames)], lastNames[(n+n/len(firstNames))%len(lastNames)]
			p := person{n: n, group: g, first: first, last: last,
				email:          strings.ToLower(first + "." + last + "@example.com"),
				phone:          fmt.Sprintf("+33 6 39 98 %02d %02d", n/100, n%100), // a range reserved for fiction
				customerNumber: fmt.Sprintf("C%05d", 10000+n),
				anonymousID:    fmt.Sprintf("demo-web-%03d", n),
				callerID:       fmt.Sprintf("demo-caller-%03d", n),
			}
			out = append(out, p)
			n++
		}
	}
	return out
}

// builder accumulates records with ids that depend only on the order they
// are made in, never on the time: loading again finds the same messageIds.
type builder struct {
	now time.Time
	rng *rand.Rand
	seq map[string]int
	ds  Dataset
}

// at is minute minutes into the day-long slot daysAgo days (0 to 6) before
// now. The seven slots start 7 days less 30 minutes ago, so that every
// record is inside a rule's "7d" window when loaded; minutes stay below
// 22 hours, so that a visit starting there (under an hour) is over before now.
func (b *builder) at(daysAgo, minute int) time.Time {
	start := b.now.Add(-time.Duration(daysAgo+1)*24*time.Hour + 30*time.Minute)
	return start.Add(time.Duration(minute) * time.Minute)
}

// add appends a record; the messageId is the source, the person and a
// per-person sequence number.
func (b *builder) add(source string, p person, at time.Time, body map[string]any) {
	key := fmt.Sprintf("%s-%03d", source, p.n)
	b.seq[key]++
	body["messageId"] = fmt.Sprintf("demo-%s-%d", key, b.seq[key])
	body["timestamp"] = at.UTC().Format(time.RFC3339Nano)
	b.ds.Records = append(b.ds.Records, Record{Source: source, At: at, Body: body})
}

// Build makes the demo shop's records, with timestamps over the seven days
// before now. The people, their behaviour and the messageIds are the same
// whatever now is; only the timestamps move.
func Build(now time.Time) Dataset {
	b := &builder{now: now.UTC(), rng: rand.New(rand.NewPCG(7, 2024)), seq: map[string]int{}}
	for _, p := range people() {
		switch p.group {
		case webAnonymous:
			b.browse(p, false, 0.2)
		case webSignUp:
			b.browse(p, true, 0.5)
		case webAndStore:
			b.shopVisits(p, false)
			b.browse(p, true, 0.5)
		case storeOnly:
			b.shopVisits(p, b.rng.IntN(3) == 0)
		case storeAndCalls:
			b.shopVisits(p, true)
			b.calls(p, false)
		case callsOnly:
			b.calls(p, p.n%3 == 0)
		}
		if p.group != webAnonymous && p.group != callsOnly {
			b.newsletter(p)
		}
	}
	// Each source sends its records in time order, as a real one would.
	slices.SortStableFunc(b.ds.Records, func(x, y Record) int {
		if c := slices.Index(loadOrder, x.Source) - slices.Index(loadOrder, y.Source); c != 0 {
			return c
		}
		return x.At.Compare(y.At)
	})
	return b.ds
}

// browse makes one to four website visits: pages, products viewed, carts,
// sometimes an order. identifies says the person signs in (or up) on a
// visit after the first, so that their first visits are anonymous.
func (b *builder) browse(p person, identifies bool, orderRate float64) {
	visits := 1 + b.rng.IntN(4)
	if identifies && visits == 1 {
		visits = 2
	}
	days := b.rng.Perm(7)[:visits]
	slices.SortFunc(days, func(x, y int) int { return y - x }) // oldest first
	identifyOn := -1
	if identifies {
		identifyOn = 1 + b.rng.IntN(visits-1)
	}
	device := map[string]any{"userAgent": "Mozilla/5.0 (demo)", "locale": "fr-FR"}
	for v, day := range days {
		t := b.at(day, b.rng.IntN(22*60))
		step := func() time.Time { t = t.Add(time.Duration(1+b.rng.IntN(3)) * time.Minute); return t }
		page := func(name, path string, props map[string]any) {
			props["path"], props["url"] = path, "https://shop.example.com"+path
			b.add(SourceWeb, p, step(), map[string]any{"type": "page", "anonymousId": p.anonymousID, "name": name,
				"properties": props, "context": merge(device, map[string]any{"page": map[string]any{"path": path}})})
		}
		track := func(event string, props map[string]any) {
			b.add(SourceWeb, p, step(), map[string]any{"type": "track", "anonymousId": p.anonymousID, "event": event,
				"properties": props, "context": device})
		}
		home := map[string]any{"title": "Lumen & Co, homeware"}
		if v == 0 {
			home["referrer"] = referrers[b.rng.IntN(len(referrers))]
		}
		page("Home", "/", home)
		if v == identifyOn {
			traits := map[string]any{"email": p.email, "first_name": p.first, "last_name": p.last}
			b.add(SourceWeb, p, step(), map[string]any{"type": "identify", "anonymousId": p.anonymousID, "traits": traits, "context": device})
			if p.group == webSignUp {
				track("Signed Up", map[string]any{"method": "account form"})
			} else {
				track("Signed In", map[string]any{"method": "password"})
			}
		}
		var viewed []product
		for range 1 + b.rng.IntN(4) {
			pr := catalogue[b.rng.IntN(len(catalogue))]
			viewed = append(viewed, pr)
			page("Product", "/products/"+strings.ToLower(pr.ID), map[string]any{"title": pr.Name})
			track("Product Viewed", map[string]any{"product_id": pr.ID, "name": pr.Name, "category": pr.Category, "price": pr.Price, "currency": "EUR"})
		}
		if b.rng.Float64() >= 0.45 {
			continue
		}
		cartID := fmt.Sprintf("cart-%03d-%d", p.n, v)
		items := viewed[:1+b.rng.IntN(len(viewed))]
		lines, total := orderLines(items)
		track("Cart Updated", map[string]any{"cart_id": cartID, "total": total, "currency": "EUR", "products": lines})
		if b.rng.Float64() < orderRate {
			page("Checkout", "/checkout", map[string]any{"title": "Checkout"})
			track("Order Completed", map[string]any{"order_id": fmt.Sprintf("W-%03d-%d", p.n, v), "cart_id": cartID,
				"revenue": total, "currency": "EUR", "products": lines})
		}
	}
}

// shopVisits makes a shop customer: the till's customer record (customer
// number, email, and the phone when withPhone), then one to three
// purchases. The shop knows the customer number as the userId.
func (b *builder) shopVisits(p person, withPhone bool) {
	shop := shops[b.rng.IntN(len(shops))]
	till := map[string]any{"channel": "store", "location": map[string]any{"city": strings.Fields(shop)[0]}}
	purchases := 1 + b.rng.IntN(3)
	days := b.rng.Perm(7)[:purchases]
	slices.SortFunc(days, func(x, y int) int { return y - x })
	for i, day := range days {
		t := b.at(day, 9*60+b.rng.IntN(10*60))
		if i == 0 {
			traits := map[string]any{"email": p.email, "first_name": p.first, "last_name": p.last,
				"customer_number": p.customerNumber, "loyalty_tier": []string{"bronze", "silver", "gold"}[b.rng.IntN(3)], "home_shop": shop}
			if withPhone {
				traits["phone"] = p.phone
			}
			b.add(SourceStore, p, t, map[string]any{"type": "identify", "userId": p.customerNumber, "traits": traits, "context": till})
			t = t.Add(time.Minute)
		}
		items := make([]product, 1+b.rng.IntN(3))
		for j := range items {
			items[j] = catalogue[b.rng.IntN(len(catalogue))]
		}
		lines, total := orderLines(items)
		b.add(SourceStore, p, t, map[string]any{"type": "track", "userId": p.customerNumber, "event": "Order Completed",
			"properties": map[string]any{"order_id": fmt.Sprintf("S-%03d-%d", p.n, i), "revenue": total, "currency": "EUR",
				"store": shop, "payment": []string{"card", "card", "cash"}[b.rng.IntN(3)], "products": lines},
			"context": till})
	}
}

// calls makes one or two calls to the call centre. The call is logged
// under the centre's caller record first; the caller's phone (and email
// when withEmail) is synced a minute later, which links the call to the
// person the shop knows by that phone.
func (b *builder) calls(p person, withEmail bool) {
	line := map[string]any{"channel": "phone"}
	n := 1 + b.rng.IntN(2)
	days := b.rng.Perm(7)[:n]
	slices.SortFunc(days, func(x, y int) int { return y - x })
	for i, day := range days {
		t := b.at(day, 8*60+b.rng.IntN(11*60))
		r := callReasons[b.rng.IntN(len(callReasons))]
		b.add(SourceCallCentre, p, t, map[string]any{"type": "track", "anonymousId": p.callerID, "event": "Call Logged",
			"properties": map[string]any{"reason": r.Reason, "notes": r.Notes, "duration_seconds": 60 + b.rng.IntN(600),
				"agent": []string{"Margaux", "Karim", "Sophie"}[b.rng.IntN(3)]},
			"context": line})
		if i == 0 {
			traits := map[string]any{"phone": p.phone, "first_name": p.first, "last_name": p.last}
			if withEmail {
				traits["email"] = p.email
			}
			b.add(SourceCallCentre, p, t.Add(time.Minute), map[string]any{"type": "identify", "anonymousId": p.callerID, "traits": traits, "context": line})
		}
	}
}

// newsletter records how a known person reacted to last week's newsletter
// (template "newsletter"), sent five days ago: some opened it, a few of
// them by a mail privacy proxy (machine opens), some clicked.
func (b *builder) newsletter(p person) {
	sent := b.at(5, 8*60)
	r := b.rng.Float64()
	if r >= 0.55 {
		return
	}
	open := sent.Add(time.Duration(5+b.rng.IntN(36*60)) * time.Minute)
	machine := r < 0.06
	id := fmt.Sprintf("demo-email-%03d", p.n)
	b.ds.EmailEvents = append(b.ds.EmailEvents, EmailEvent{Email: p.email, MessageID: id + "-open", Event: "Email Opened", At: open,
		Properties: map[string]any{"template": "newsletter", "machine_open": machine}})
	if !machine && r < 0.25 {
		b.ds.EmailEvents = append(b.ds.EmailEvents, EmailEvent{Email: p.email, MessageID: id + "-click", Event: "Email Clicked",
			At: open.Add(time.Duration(1+b.rng.IntN(5)) * time.Minute), Properties: map[string]any{"template": "newsletter", "url": "https://shop.example.com/journal"}})
	}
}

// orderLines lists products as Segment's e-commerce spec does, with the total.
func orderLines(items []product) ([]any, float64) {
	var lines []any
	total := 0.0
	for _, pr := range items {
		lines = append(lines, map[string]any{"product_id": pr.ID, "name": pr.Name, "category": pr.Category, "price": pr.Price, "quantity": 1})
		total += pr.Price
	}
	return lines, total
}

func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Example is a demo person worth opening in the console, found by Query
// (an identifier the profile search takes) and named by Label.
type Example struct {
	Query, Label, Story string
}

// Examples lists one person per way Parcours saw them.
func Examples() []Example {
	stories := map[group]string{
		webAnonymous:  "browsed the website without signing in: an anonymous profile",
		webAndStore:   "a shop customer who browsed anonymously, then signed in: two profiles merged into one",
		storeAndCalls: "a shop customer who called the call centre: the call joined them by phone",
	}
	var out []Example
	for _, p := range people() {
		story, ok := stories[p.group]
		if !ok {
			continue
		}
		delete(stories, p.group)
		ex := Example{Query: p.email, Label: p.first + " " + p.last, Story: story}
		switch p.group {
		case webAnonymous:
			ex.Query, ex.Label = p.anonymousID, "A visitor" // nobody knows their name
		case storeAndCalls:
			ex.Query = p.phone
		}
		out = append(out, ex)
	}
	return out
}
