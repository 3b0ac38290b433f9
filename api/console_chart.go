package api

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Charts are inline SVG drawn on the server, like the journey diagram: no
// JavaScript library, nothing to load. A chart scales to its container
// (viewBox, width 100%), tells series apart by colour, dash pattern and
// marker shape together (never colour alone), carries a <title> and a
// <desc> that a screen reader reads out, and each point has a <title> the
// browser shows on hover. Pages should still offer the numbers as a table.

// chartPoint is one value at one time (for daily series, the day's midnight).
type chartPoint struct {
	At    time.Time
	Value float64
}

// chartSeries is one line of a chart; Points are in time order.
type chartSeries struct {
	Name   string
	Points []chartPoint
}

// chartBar is one bar of a bar chart. Note, when set, is printed after the
// value (e.g. "42% of entries").
type chartBar struct {
	Label string
	Value float64
	Note  string
}

// chartOptions adjust a chart; the zero value is a sensible default.
type chartOptions struct {
	// ID makes the chart's element ids unique on the page (default: from
	// the title). Set it when two charts share a title.
	ID string
	// Desc is read out by screen readers before the generated summary of
	// the data.
	Desc string
	// Height of the drawing in viewBox units (default 260 for a line
	// chart; a bar chart grows with its bars). The width is 720 units and
	// the chart is scaled to its container.
	Height int
	// FormatValue writes values on the axis, in point titles and on bars
	// (default: whole numbers with thousands separators, else up to two
	// decimals). Use it for percentages or money.
	FormatValue func(float64) string
}

const (
	chartW        = 720.0
	chartFontSize = 12.0
	chartCharW    = 6.6 // average width of a 12px system-ui character
	chartFont     = `system-ui, -apple-system, 'Segoe UI', sans-serif`
	chartInk      = "#1d2330"
	chartMuted    = "#4f5a70"
	chartGrid     = "#e3e7ef"
)

// chartStyles tell series apart: the Okabe–Ito colours (readable by people
// with the common colour vision deficiencies), each with its own dash
// pattern and marker shape so that a print-out in grey still works.
var chartStyles = []struct {
	colour, dash, marker string
}{
	{"#0072B2", "", "circle"},
	{"#D55E00", "7 4", "square"},
	{"#009E73", "2 3", "diamond"},
	{"#CC79A7", "10 3 2 3", "triangle"},
	{"#E69F00", "4 2", "circle-open"},
	{"#56B4E9", "12 4", "square-open"},
	{"#000000", "1 3", "cross"},
}

func (o chartOptions) format(v float64) string {
	if o.FormatValue != nil {
		return o.FormatValue(v)
	}
	return chartNumber(v)
}

func firstOptions(opts []chartOptions) chartOptions {
	if len(opts) > 0 {
		return opts[0]
	}
	return chartOptions{}
}

// lineChart draws series over time: a y axis from zero with round ticks, a
// time axis with dates, a legend, one line and marker per point for each
// series. A series with one point is a lone marker; with no points at all
// the chart says there is no data yet.
func lineChart(title string, series []chartSeries, opts ...chartOptions) template.HTML {
	o := firstOptions(opts)
	id := chartID(title, o.ID)
	height := float64(o.Height)
	if height <= 0 {
		height = 260
	}
	var lo, hi float64
	var t0, t1 time.Time
	n := 0
	for _, s := range series {
		for _, p := range s.Points {
			if n == 0 || p.At.Before(t0) {
				t0 = p.At
			}
			if n == 0 || p.At.After(t1) {
				t1 = p.At
			}
			lo, hi = math.Min(lo, p.Value), math.Max(hi, p.Value)
			n++
		}
	}
	var b strings.Builder
	if n == 0 {
		chartOpen(&b, id, height, title, joinSentences(o.Desc, "No data yet."))
		fmt.Fprintf(&b, `<rect x="0.5" y="0.5" width="%s" height="%s" fill="none" stroke="%s" rx="6"/>`, f1(chartW-1), f1(height-1), chartGrid)
		fmt.Fprintf(&b, `<text class="chart-empty" x="%s" y="%s" text-anchor="middle" fill="%s" font-size="15">No data yet for this period</text>`,
			f1(chartW/2), f1(height/2), chartMuted)
		b.WriteString(`</svg>`)
		return template.HTML(b.String())
	}

	// The legend sits on top, in as many rows as it needs.
	type legendItem struct{ x, y float64 }
	var legend []legendItem
	lx, ly := 8.0, 16.0
	for _, s := range series {
		w := 34 + float64(len([]rune(s.Name)))*chartCharW + 18
		if lx+w > chartW && lx > 8 {
			lx, ly = 8, ly+20
		}
		legend = append(legend, legendItem{lx, ly})
		lx += w
	}

	yTicks, yMin, yMax := chartTicks(lo, hi)
	tickW := 0.0
	for _, v := range yTicks {
		tickW = math.Max(tickW, float64(len(o.format(v)))*chartCharW)
	}
	left, right, top, bottom := tickW+14, chartW-16, ly+16, height-30
	if bottom-top < 60 {
		height += 60 - (bottom - top)
		bottom = height - 30
	}
	x := func(t time.Time) float64 {
		if !t1.After(t0) {
			return (left + right) / 2
		}
		return left + (right-left)*float64(t.Sub(t0))/float64(t1.Sub(t0))
	}
	y := func(v float64) float64 {
		return bottom - (bottom-top)*(v-yMin)/(yMax-yMin)
	}

	chartOpen(&b, id, height, title, joinSentences(o.Desc, chartSummary(series, o)))
	for i, s := range series {
		st := chartStyles[i%len(chartStyles)]
		it := legend[i]
		fmt.Fprintf(&b, `<g class="legend"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"%s/>%s<text x="%s" y="%s" fill="%s">%s</text></g>`,
			f1(it.x), f1(it.y-4), f1(it.x+28), f1(it.y-4), st.colour, dashAttr(st.dash),
			chartMarker(st.marker, st.colour, it.x+14, it.y-4, ""),
			f1(it.x+34), f1(it.y), chartInk, template.HTMLEscapeString(s.Name))
	}
	// Axes and grid.
	b.WriteString(`<g class="y-axis">`)
	for _, v := range yTicks {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/><text x="%s" y="%s" text-anchor="end" fill="%s">%s</text>`,
			f1(left), f1(y(v)), f1(right), f1(y(v)), chartGrid, f1(left-6), f1(y(v)+4), chartMuted, template.HTMLEscapeString(o.format(v)))
	}
	b.WriteString(`</g><g class="x-axis">`)
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`, f1(left), f1(bottom), f1(right), f1(bottom), chartMuted)
	for _, t := range dateTicks(t0, t1) {
		anchor := "middle"
		switch {
		case x(t) < left+20 && t1.After(t0):
			anchor = "start"
		case x(t) > right-20:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/><text x="%s" y="%s" text-anchor="%s" fill="%s">%s</text>`,
			f1(x(t)), f1(bottom), f1(x(t)), f1(bottom+5), chartMuted, f1(x(t)), f1(bottom+19), anchor, chartMuted, chartDate(t, t0, t1))
	}
	b.WriteString(`</g>`)
	// Lines, then markers on top.
	for i, s := range series {
		st := chartStyles[i%len(chartStyles)]
		if len(s.Points) > 1 {
			var d strings.Builder
			for j, p := range s.Points {
				if j == 0 {
					d.WriteString("M")
				} else {
					d.WriteString(" L")
				}
				d.WriteString(f1(x(p.At)) + " " + f1(y(p.Value)))
			}
			fmt.Fprintf(&b, `<path class="line" d="%s" fill="none" stroke="%s" stroke-width="2.25" stroke-linejoin="round"%s/>`, d.String(), st.colour, dashAttr(st.dash))
		}
	}
	for i, s := range series {
		st := chartStyles[i%len(chartStyles)]
		fmt.Fprintf(&b, `<g class="series" data-series="%s">`, template.HTMLEscapeString(s.Name))
		for _, p := range s.Points {
			tip := s.Name + " · " + p.At.Format("Mon 2 Jan 2006") + ": " + o.format(p.Value)
			b.WriteString(chartMarker(st.marker, st.colour, x(p.At), y(p.Value), tip))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barChart draws horizontal bars from zero, one per row, labelled on the
// left with the value (and note) at the end of the bar: a funnel, a
// ranking. With no bars the chart says there is no data yet.
func barChart(title string, bars []chartBar, opts ...chartOptions) template.HTML {
	o := firstOptions(opts)
	id := chartID(title, o.ID)
	var b strings.Builder
	if len(bars) == 0 {
		height := float64(max(o.Height, 80))
		chartOpen(&b, id, height, title, joinSentences(o.Desc, "No data yet."))
		fmt.Fprintf(&b, `<text class="chart-empty" x="%s" y="%s" text-anchor="middle" fill="%s" font-size="15">No data yet for this period</text></svg>`,
			f1(chartW/2), f1(height/2), chartMuted)
		return template.HTML(b.String())
	}
	const rowH, barH, maxLabel = 30.0, 18.0, 34
	labelW := 0.0
	hi := 0.0
	var parts []string
	for _, br := range bars {
		labelW = math.Max(labelW, float64(min(len([]rune(br.Label)), maxLabel))*chartCharW)
		hi = math.Max(hi, br.Value)
		parts = append(parts, br.Label+": "+o.format(br.Value)+noteSuffix(br.Note))
	}
	if hi <= 0 {
		hi = 1
	}
	height := math.Max(float64(o.Height), float64(len(bars))*rowH+12)
	left := labelW + 16
	right := chartW - 150 // room for the value and note after the longest bar
	chartOpen(&b, id, height, title, joinSentences(o.Desc, strings.Join(parts, "; ")+"."))
	fmt.Fprintf(&b, `<line x1="%s" y1="4" x2="%s" y2="%s" stroke="%s"/>`, f1(left), f1(left), f1(height-4), chartMuted)
	for i, br := range bars {
		top := 6 + float64(i)*rowH
		w := math.Max(0, (right-left)*br.Value/hi)
		label := []rune(br.Label)
		shown := br.Label
		if len(label) > maxLabel {
			shown = strings.TrimSpace(string(label[:maxLabel-1])) + "…"
		}
		fmt.Fprintf(&b, `<g class="bar"><title>%s</title><text x="%s" y="%s" text-anchor="end" fill="%s">%s</text>`,
			template.HTMLEscapeString(br.Label+": "+o.format(br.Value)+noteSuffix(br.Note)),
			f1(left-8), f1(top+barH/2+4), chartInk, template.HTMLEscapeString(shown))
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s" rx="2"/>`, f1(left), f1(top), f1(w), f1(barH), chartStyles[0].colour)
		fmt.Fprintf(&b, `<text x="%s" y="%s" fill="%s"><tspan font-weight="600">%s</tspan>%s</text></g>`,
			f1(left+w+6), f1(top+barH/2+4), chartInk, template.HTMLEscapeString(o.format(br.Value)), noteSpan(br.Note))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func noteSuffix(note string) string {
	if note == "" {
		return ""
	}
	return " (" + note + ")"
}

func noteSpan(note string) string {
	if note == "" {
		return ""
	}
	return fmt.Sprintf(`<tspan fill="%s"> · %s</tspan>`, chartMuted, template.HTMLEscapeString(note))
}

// chartOpen writes the <svg> element with its title and description, which
// screen readers announce in place of the drawing.
func chartOpen(b *strings.Builder, id string, height float64, title, desc string) {
	fmt.Fprintf(b, `<svg class="chart" id="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" width="100%%" role="img" aria-labelledby="%s-title %s-desc" font-family="%s" font-size="%s" style="display:block;height:auto;min-width:30rem">`,
		id, f1(chartW), f1(height), id, id, chartFont, f1(chartFontSize))
	fmt.Fprintf(b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, template.HTMLEscapeString(title), id, template.HTMLEscapeString(desc))
}

// chartMarker draws a marker shape centred on (x, y), with a hover title
// when tip is set.
func chartMarker(shape, colour string, x, y float64, tip string) string {
	var d string
	fill := colour
	switch shape {
	case "square", "square-open":
		d = `<rect x="-3.5" y="-3.5" width="7" height="7"`
	case "diamond":
		d = `<path d="M0 -4.6 L4.6 0 L0 4.6 L-4.6 0 Z"`
	case "triangle":
		d = `<path d="M0 -4.8 L4.4 3.6 L-4.4 3.6 Z"`
	case "cross":
		d = `<path d="M-4 -4 L4 4 M4 -4 L-4 4" stroke-width="2"`
	default:
		d = `<circle r="4"`
	}
	if strings.HasSuffix(shape, "-open") || shape == "cross" {
		fill = "#fff"
	}
	title := ""
	if tip != "" {
		title = "<title>" + template.HTMLEscapeString(tip) + "</title>"
	}
	return fmt.Sprintf(`<g class="pt" transform="translate(%s,%s)">%s%s fill="%s" stroke="%s" stroke-width="1.5"/></g>`, f1(x), f1(y), title, d, fill, colour)
}

func dashAttr(dash string) string {
	if dash == "" {
		return ""
	}
	return ` stroke-dasharray="` + dash + `"`
}

// chartTicks returns round y ticks covering [lo, hi], always including
// zero, and the axis range they span.
func chartTicks(lo, hi float64) (ticks []float64, from, to float64) {
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 4)
	// Counts are whole: no tick at 2.5 sends.
	if step < 1 && lo == math.Trunc(lo) && hi == math.Trunc(hi) && hi-lo <= 4 {
		step = 1
	}
	from = math.Floor(lo/step) * step
	to = math.Ceil(hi/step) * step
	if to == from {
		to = from + step
	}
	for v := from; v <= to+step/2; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks, from, to
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch n := raw / mag; {
	case n <= 1:
		return mag
	case n <= 2:
		return 2 * mag
	case n <= 5:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// dateTicks picks at most eight dates from t0 to t1, a round number of
// days apart.
func dateTicks(t0, t1 time.Time) []time.Time {
	days := int(math.Ceil(t1.Sub(t0).Hours() / 24))
	step := 1
	for _, s := range []int{1, 2, 3, 7, 14, 30, 61, 91, 182, 365} {
		step = s
		if days/s < 8 {
			break
		}
	}
	var out []time.Time
	for t := t0; !t.After(t1); t = t.AddDate(0, 0, step) {
		out = append(out, t)
	}
	return out
}

// chartDate writes a tick's date, with the year only when the chart spans
// more than one.
func chartDate(t, t0, t1 time.Time) string {
	if t0.Year() != t1.Year() {
		return t.Format("2 Jan 2006")
	}
	return t.Format("2 Jan")
}

// chartSummary describes each series in a sentence for screen readers.
func chartSummary(series []chartSeries, o chartOptions) string {
	var parts []string
	for _, s := range series {
		if len(s.Points) == 0 {
			parts = append(parts, s.Name+": no data")
			continue
		}
		hiP, loP := s.Points[0], s.Points[0]
		for _, p := range s.Points {
			if p.Value > hiP.Value {
				hiP = p
			}
			if p.Value < loP.Value {
				loP = p
			}
		}
		first, last := s.Points[0], s.Points[len(s.Points)-1]
		count := fmt.Sprintf("%d points", len(s.Points))
		if len(s.Points) == 1 {
			count = "1 point"
		}
		parts = append(parts, fmt.Sprintf("%s: %s from %s to %s, highest %s on %s, lowest %s on %s",
			s.Name, count, first.At.Format("2 Jan 2006"), last.At.Format("2 Jan 2006"),
			o.format(hiP.Value), hiP.At.Format("2 Jan"), o.format(loP.Value), loP.At.Format("2 Jan")))
	}
	return strings.Join(parts, ". ") + "."
}

func joinSentences(a, b string) string {
	if a == "" {
		return b
	}
	return strings.TrimSpace(a) + " " + b
}

// chartID makes an element id from the chart's title.
func chartID(title, id string) string {
	if id == "" {
		id = title
	}
	var b strings.Builder
	b.WriteString("chart-")
	dash := false
	for _, r := range strings.ToLower(id) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// chartNumber writes whole numbers with thousands separators (1,234) and
// others with up to two decimals.
func chartNumber(v float64) string {
	if v != math.Trunc(v) || math.Abs(v) >= 1e15 {
		return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0"), ".")
	}
	s := strconv.FormatInt(int64(math.Abs(v)), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if v < 0 {
		s = "-" + s
	}
	return s
}

// f1 writes a coordinate with one decimal: enough for a 720-unit drawing,
// and short.
func f1(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }
