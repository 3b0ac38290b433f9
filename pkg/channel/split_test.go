package channel

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// Every body of a split is spelt exactly by the shared parts and its own
// values: what SendGrid rebuilds is what the template rendered.
func TestSplitRebuildsEveryBody(t *testing.T) {
	t.Parallel()
	names := []string{"Ana", "Bob", "Zoë", "", "Jean-Pierre", "O'Brien & Co", "Ana"}
	var bodies []string
	for i, n := range names {
		b := fmt.Sprintf("<h1>Hello %s</h1>\n<p>Our November offers.</p>\n", n)
		if i%2 == 0 {
			b += "<p>As a loyal customer, 10% off.</p>\n"
		}
		b += fmt.Sprintf(`<a href="https://x.example/u?token=%d-%s">unsubscribe</a>`, i*7919, strings.Repeat("q", i))
		bodies = append(bodies, b)
	}
	sp, in := splitBodies(bodies, 256)
	for i, b := range bodies {
		if !in[i] {
			t.Fatalf("body %d left out of the split", i)
		}
		if !sp.rebuilds(b, sp.values[i]) {
			t.Fatalf("body %d not rebuilt: parts %q values %q", i, sp.parts, sp.values[i])
		}
	}
	if len(sp.parts) < 3 || !strings.Contains(strings.Join(sp.parts, ""), "Our November offers.") {
		t.Fatalf("shared parts %q: the common text should be shared, with holes for the name, the offer and the link", sp.parts)
	}
	for i := range bodies {
		size := 0
		for _, v := range sp.values[i] {
			size += len(v)
		}
		if size > 120 {
			t.Fatalf("body %d carries %d bytes of substitutions: the holes are not tight (%q)", i, size, sp.values[i])
		}
	}
}

func TestSplitRandomBodies(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "bb", " ", "<p>", "</p>", "\n", "é", "ccc", "-", "--", "x1"}
	gen := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(words[r.IntN(len(words))])
		}
		return b.String()
	}
	for round := range 200 {
		base := gen(r.IntN(60))
		var bodies []string
		for range 1 + r.IntN(8) {
			// Mutate the base in a few places.
			b := base
			for range r.IntN(4) {
				p := 0
				if len(b) > 0 {
					p = r.IntN(len(b) + 1)
				}
				q := min(len(b), p+r.IntN(6))
				b = b[:p] + gen(r.IntN(3)) + b[q:]
			}
			bodies = append(bodies, b)
		}
		sp, in := splitBodies(bodies, 1000)
		for i, b := range bodies {
			if !in[i] {
				t.Fatalf("round %d: body %d left out with a generous edit budget", round, i)
			}
			if !sp.rebuilds(b, sp.values[i]) {
				t.Fatalf("round %d: body %d %q not rebuilt from parts %q values %q", round, i, b, sp.parts, sp.values[i])
			}
		}
	}
}

func TestSplitLeavesOutBodiesBeyondTheEditBudget(t *testing.T) {
	t.Parallel()
	bodies := []string{"one two three four", "one two three four", "five six seven eight nine ten"}
	sp, in := splitBodies(bodies, 4)
	if !in[0] || !in[1] || in[2] {
		t.Fatalf("in = %v, want the two alike in and the different one out", in)
	}
	if len(sp.parts) != 1 || sp.parts[0] != bodies[0] {
		t.Fatalf("parts %q, want the body whole (no hole)", sp.parts)
	}
}

// BenchmarkPlanBatch plans one SendGrid request for 1,000 newsletters that
// differ in the greeting and in two signed links.
func BenchmarkPlanBatch(b *testing.B) {
	msgs := make([]BatchMessage, 1000)
	for i := range msgs {
		unsub := fmt.Sprintf("https://p.example/v1/unsubscribe?token=djF8d3N8%08dfHx8ZW1haWw.%040d", i*7919, i*31)
		prefs := fmt.Sprintf("https://p.example/v1/preferences?token=djF8d3N8%08d.%040d", i*104729, i*17)
		msgs[i] = BatchMessage{To: fmt.Sprintf("r%d@example.com", i), Subject: fmt.Sprintf("R%d, news", i),
			HTML:  fmt.Sprintf("<h1>Hi R%d</h1>%s<a href=%q>unsubscribe</a> <a href=%q>preferences</a>", i, strings.Repeat("<p>The same text for all of them.</p>", 100), unsub, prefs),
			Text:  fmt.Sprintf("Hi R%d. Unsubscribe: %s", i, unsub),
			Links: []string{unsub, prefs}}
	}
	b.ResetTimer()
	for range b.N {
		if reqs := planBatch(msgs); len(reqs) != 1 {
			b.Fatalf("%d requests, want 1", len(reqs))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/message")
}

// expand applies a request's substitutions for member m, as SendGrid does.
func expand(r *batchRequest, m int) (html, text string) {
	var pairs []string
	for _, c := range []contentPlan{r.html, r.text} {
		for i, k := range c.keys {
			pairs = append(pairs, k, c.values[m][i])
		}
	}
	for k, v := range r.lifted[m] {
		pairs = append(pairs, k, v)
	}
	rep := strings.NewReplacer(pairs...)
	return rep.Replace(r.html.content()), rep.Replace(r.text.content())
}

// Planning groups what can share a request and leaves alone what cannot;
// every message comes out of its request exactly as rendered.
func TestPlanBatchGroupsAndRebuildsEveryMessage(t *testing.T) {
	t.Parallel()
	shared := strings.Repeat("<p>Nouvelles du mois, les mêmes pour tous.</p>", 30)
	tests := []struct {
		name     string
		html     func(i int) string
		requests int
	}{
		{"names differ", func(i int) string { return fmt.Sprintf("<h1>Bonjour N%d</h1>%s", i, shared) }, 1},
		{"an odd first body", func(i int) string {
			if i == 0 {
				return strings.Repeat("<p>Something else entirely, in another language and layout.</p>", 40)
			}
			return fmt.Sprintf("<h1>Bonjour N%d</h1>%s", i, shared)
		}, 2},
		{"nothing shared", func(i int) string {
			var b strings.Builder
			for j := range 100 {
				fmt.Fprintf(&b, "<p>%x</p>", sha256.Sum256([]byte(fmt.Sprint(i, j))))
			}
			return b.String()
		}, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs := make([]BatchMessage, 60)
			for i := range msgs {
				link := fmt.Sprintf("https://p.example/v1/unsubscribe?token=%d", i*7919)
				msgs[i] = BatchMessage{To: fmt.Sprintf("r%d@example.com", i), Subject: "S", HTML: tt.html(i) + `<a href="` + link + `">x</a>`,
					Text: "Bonjour, " + link, Links: []string{link}}
			}
			reqs := planBatch(msgs)
			if len(reqs) != tt.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tt.requests)
			}
			seen := map[int]bool{}
			for _, r := range reqs {
				for _, m := range r.members {
					if seen[m] {
						t.Fatalf("message %d planned twice", m)
					}
					seen[m] = true
					if html, text := expand(r, m); html != msgs[m].HTML || text != msgs[m].Text {
						t.Fatalf("message %d rebuilt as %q / %q", m, html, text)
					}
				}
			}
			if len(seen) != len(msgs) {
				t.Fatalf("%d of %d messages planned", len(seen), len(msgs))
			}
		})
	}
}
