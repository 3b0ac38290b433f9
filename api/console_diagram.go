package api

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"

	"github.com/parcours/parcours/pkg/journey"
)

// The journey diagram is an inline SVG drawn on the server from the
// definition (pkg/journey's Layout): one box per step with words a marketer
// reads, arrows for the ways between them, labelled when a step has
// several (the branch conditions, "if it comes", "after 1 hour"). No
// JavaScript library draws it; the page lists the same steps in a table.

// diagramStep is one box: what it is and how many runs went through it.
type diagramStep struct {
	ID string
	// Kind is the small heading: Email, Wait, Wait for an event, ...
	Kind string
	// Text says what the step does, in words.
	Text string
	// Class styles the box: start, send, wait, branch, exit, other.
	Class string
	// Passed counts runs that went through the step; Here those on it now.
	Passed, Here int
	// Counted says whether to print the counts (not on the start box).
	Counted bool
	// Link opens the runs at the step ("" for none).
	Link string
}

const (
	boxW, boxH   = 248, 62
	gapX, gapY   = 40, 46
	margin       = 16
	laneGap      = 22
	charW        = 6.6 // average width of a 12px system-ui character
	maxLineChars = 34
)

// diagramSVG draws the journey. steps describes every node (by id) and the
// start box (id ""); edgeLabel names an edge in words.
func diagramSVG(d journey.Definition, steps map[string]diagramStep, edgeLabel func(journey.Edge) string) template.HTML {
	l := d.Layout()
	// The start box sits on a row of its own, above the first step.
	rows := append([][]string{{""}}, l.Layers...)
	layer := map[string]int{"": 0}
	for id, n := range l.Layer {
		layer[id] = n + 1
	}
	edges := append([]journey.Edge{{From: "", To: d.Start, Kind: journey.EdgeNext}}, l.Edges...)
	back := map[int]bool{}
	for i := range l.Back {
		back[i+1] = true
	}
	widest := 0
	for _, r := range rows {
		widest = max(widest, len(r))
	}
	contentW := widest*boxW + (widest-1)*gapX
	type point struct{ x, y int }
	at := map[string]point{}
	for i, r := range rows {
		rowW := len(r)*boxW + (len(r)-1)*gapX
		x0 := margin + (contentW-rowW)/2
		for j, id := range r {
			at[id] = point{x0 + j*(boxW+gapX), margin + i*(boxH+gapY)}
		}
	}
	// Arrows between adjacent rows go straight down; the others (skipping
	// rows, going back up a loop, within a row) run in lanes on the right.
	var lanes []int
	for i, e := range edges {
		if _, ok := at[e.To]; !ok {
			continue
		}
		if back[i] || layer[e.To] != layer[e.From]+1 {
			lanes = append(lanes, i)
		}
	}
	laneX0 := margin + contentW + 24
	width := laneX0 + len(lanes)*laneGap + 140
	height := margin*2 + len(rows)*boxH + (len(rows)-1)*gapY

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="diagram-title" class="diagram">`, width, height, width, height)
	fmt.Fprintf(&b, `<title id="diagram-title">Diagram of the journey %s: %d steps</title>`, esc(d.Name), len(d.Nodes))
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#5b6478"/></marker></defs>`)
	label := func(x, y int, text string, anchor string) {
		if text == "" {
			return
		}
		text = truncate(text, 40)
		w := int(float64(len([]rune(text)))*charW) + 10
		rx := x - w/2
		if anchor == "start" {
			rx = x - 4
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="18" rx="4" class="edge-label-bg"/>`, rx, y-13, w)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="%s" class="edge-label">%s</text>`, x, y, anchor, esc(text))
	}
	lane := 0
	// Several arrows leaving one box down to the next row fan out along its bottom.
	outs := map[string][]int{}
	for i, e := range edges {
		if _, ok := at[e.To]; ok && !back[i] && layer[e.To] == layer[e.From]+1 {
			outs[e.From] = append(outs[e.From], i)
		}
	}
	for i, e := range edges {
		to, ok := at[e.To]
		if !ok {
			continue
		}
		from := at[e.From]
		text := edgeLabel(e)
		cls := "edge"
		if e.Kind == journey.EdgeTimeout || e.Kind == journey.EdgeElse || e.Kind == journey.EdgeOnMissing {
			cls = "edge alt"
		}
		if back[i] || layer[e.To] != layer[e.From]+1 {
			x := laneX0 + lane*laneGap
			lane++
			y1, y2 := from.y+boxH/2, to.y+boxH/2+8
			fmt.Fprintf(&b, `<path d="M%d %d H%d V%d H%d" class="%s" marker-end="url(#arrow)"><title>%s</title></path>`,
				from.x+boxW, y1, x, y2, to.x+boxW+2, cls, esc(text))
			label(from.x+boxW+8, y1-6, text, "start")
			continue
		}
		sib := outs[e.From]
		k := 0
		for j, idx := range sib {
			if idx == i {
				k = j
			}
		}
		x1 := from.x + boxW*(k+1)/(len(sib)+1)
		x2 := to.x + boxW/2
		y1, y2 := from.y+boxH, to.y-2
		fmt.Fprintf(&b, `<path d="M%d %d C%d %d %d %d %d %d" class="%s" marker-end="url(#arrow)"><title>%s</title></path>`,
			x1, y1, x1, y1+gapY/2, x2, y2-gapY/2, x2, y2, cls, esc(text))
		label((x1+x2)/2, (y1+y2)/2+4, text, "middle")
	}
	for _, r := range rows {
		for _, id := range r {
			st, p := steps[id], at[id]
			if st.Link != "" {
				fmt.Fprintf(&b, `<a href="%s" class="step-link" aria-label="%s">`, esc(st.Link), esc(st.Kind+": "+st.Text+" — "+countText(st)+"; show who is here"))
			}
			fmt.Fprintf(&b, `<g class="step %s" data-node="%s"><title>%s</title>`, st.Class, esc(id), esc(st.Kind+": "+st.Text))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="8"/>`, p.x, p.y, boxW, boxH)
			fmt.Fprintf(&b, `<text x="%d" y="%d" class="kind">%s</text>`, p.x+12, p.y+18, esc(strings.ToUpper(st.Kind)))
			for j, line := range wrap(st.Text, maxLineChars, 2) {
				fmt.Fprintf(&b, `<text x="%d" y="%d" class="what">%s</text>`, p.x+12, p.y+35+j*15, esc(line))
			}
			if st.Counted {
				fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" class="count">%s</text>`, p.x+boxW-10, p.y+18, esc(countText(st)))
			}
			b.WriteString(`</g>`)
			if st.Link != "" {
				b.WriteString(`</a>`)
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func countText(st diagramStep) string {
	s := strconv.Itoa(st.Passed) + " passed"
	if st.Here > 0 {
		s += " · " + strconv.Itoa(st.Here) + " here"
	}
	return s
}

var svgEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

func esc(s string) string { return svgEscaper.Replace(s) }

// truncate shortens s to n characters with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// wrap breaks s into at most lines lines of about width characters, the
// last one shortened with an ellipsis if needed.
func wrap(s string, width, lines int) []string {
	var out []string
	cur := ""
	words := strings.Fields(s)
	for i, w := range words {
		switch {
		case cur == "":
			cur = w
		case len([]rune(cur))+1+len([]rune(w)) <= width:
			cur += " " + w
		default:
			out = append(out, cur)
			cur = w
			if len(out) == lines-1 {
				cur = strings.Join(words[i:], " ")
				out = append(out, truncate(cur, width))
				return out
			}
		}
	}
	if cur != "" {
		out = append(out, truncate(cur, width))
	}
	return out
}
