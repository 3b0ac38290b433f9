package api

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chartSVGNode is a parsed SVG element.
type chartSVGNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr     `xml:",any,attr"`
	Text     string         `xml:",chardata"`
	Children []chartSVGNode `xml:",any"`
}

func (n chartSVGNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// walk calls f on n and every descendant.
func (n chartSVGNode) walk(f func(chartSVGNode)) {
	f(n)
	for _, c := range n.Children {
		c.walk(f)
	}
}

func parseChartSVG(t *testing.T, svg string) chartSVGNode {
	t.Helper()
	var root chartSVGNode
	if err := xml.Unmarshal([]byte(svg), &root); err != nil {
		t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
	}
	if root.XMLName.Local != "svg" {
		t.Fatalf("root is %s, want svg", root.XMLName.Local)
	}
	return root
}

func svgNumber(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return v
}

// chartPlotBox returns the plot area: left and right ends of the time axis,
// the top grid line and the time axis.
func chartPlotBox(t *testing.T, root chartSVGNode) (left, right, top, bottom float64) {
	t.Helper()
	top = 1e9
	root.walk(func(n chartSVGNode) {
		switch n.attr("class") {
		case "x-axis":
			base := n.Children[0]
			left, right, bottom = svgNumber(t, base.attr("x1")), svgNumber(t, base.attr("x2")), svgNumber(t, base.attr("y1"))
		case "y-axis":
			for _, c := range n.Children {
				if c.XMLName.Local == "line" {
					top = min(top, svgNumber(t, c.attr("y1")))
				}
			}
		}
	})
	if right <= left || bottom <= top {
		t.Fatalf("no plot area found (left %v right %v top %v bottom %v)", left, right, top, bottom)
	}
	return left, right, top, bottom
}

// markers returns the centre of every point marker by series name.
func markerCentres(t *testing.T, root chartSVGNode) map[string][][2]float64 {
	t.Helper()
	out := map[string][][2]float64{}
	root.walk(func(n chartSVGNode) {
		if n.attr("class") != "series" {
			return
		}
		name := n.attr("data-series")
		for _, c := range n.Children {
			var x, y float64
			if _, err := fmt.Sscanf(c.attr("transform"), "translate(%g,%g)", &x, &y); err != nil {
				t.Fatalf("marker transform %q: %v", c.attr("transform"), err)
			}
			out[name] = append(out[name], [2]float64{x, y})
		}
	})
	return out
}

func dailyPoints(from time.Time, values ...float64) []chartPoint {
	var out []chartPoint
	for i, v := range values {
		out = append(out, chartPoint{At: from.AddDate(0, 0, i), Value: v})
	}
	return out
}

func TestLineChartPlotsEveryPointInsideTheAxes(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	svg := string(lineChart("Sends & opens", []chartSeries{
		{Name: "Sends", Points: dailyPoints(from, 0, 12, 1200, 7, 0, 3, 40)},
		{Name: "Opens <by people>", Points: dailyPoints(from, 0, 4, 600, 2, 0, 1, 13)},
	}))
	root := parseChartSVG(t, svg)
	if root.attr("viewBox") == "" || root.attr("width") != "100%" {
		t.Errorf("chart does not scale to its container: viewBox %q width %q", root.attr("viewBox"), root.attr("width"))
	}
	left, right, top, bottom := chartPlotBox(t, root)
	pts := markerCentres(t, root)
	if len(pts["Sends"]) != 7 || len(pts["Opens <by people>"]) != 7 {
		t.Fatalf("markers per series = %d, %d; want 7 each", len(pts["Sends"]), len(pts["Opens <by people>"]))
	}
	for name, ps := range pts {
		for i, p := range ps {
			if p[0] < left-0.01 || p[0] > right+0.01 || p[1] < top-0.01 || p[1] > bottom+0.01 {
				t.Errorf("%s point %d at %v is outside the plot [%v..%v]x[%v..%v]", name, i, p, left, right, top, bottom)
			}
		}
	}
	sends := pts["Sends"]
	if sends[0][0] != left || sends[6][0] != right {
		t.Errorf("first and last day should sit on the ends of the time axis: %v, %v", sends[0], sends[6])
	}
	if sends[0][1] != bottom {
		t.Errorf("zero should sit on the time axis: y %v, axis %v", sends[0][1], bottom)
	}
	if !(sends[2][1] < sends[1][1] && sends[1][1] < sends[0][1]) {
		t.Errorf("larger values should be drawn higher: %v", sends[:3])
	}
	// Readable ticks, a legend, and words for screen readers.
	for _, want := range []string{">1 Mar<", ">7 Mar<", ">1,000<", ">Sends<", "&lt;by people&gt;", "Sends · Tue 3 Mar 2026: 1,200", "highest 1,200 on 3 Mar"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	var title, desc string
	root.walk(func(n chartSVGNode) {
		switch {
		case n.XMLName.Local == "title" && n.attr("id") != "":
			title = n.Text
		case n.XMLName.Local == "desc":
			desc = n.Text
		}
	})
	if title != "Sends & opens" || !strings.Contains(desc, "Sends: 7 points") {
		t.Errorf("title %q desc %q", title, desc)
	}
	if strings.Count(svg, "stroke-dasharray") < 1 {
		t.Error("the second series should be dashed, not told apart by colour alone")
	}
}

func TestLineChartEdgeCases(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 12, 30, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		series  []chartSeries
		want    []string
		markers int
	}{
		{"no series", nil, []string{"No data yet"}, 0},
		{"series without points", []chartSeries{{Name: "Clicks"}}, []string{"No data yet"}, 0},
		{"one point", []chartSeries{{Name: "Clicks", Points: dailyPoints(day, 5)}}, []string{">30 Dec<", "Clicks · Wed 30 Dec 2026: 5<", "1 point from"}, 1},
		{"all zero", []chartSeries{{Name: "Bounces", Points: dailyPoints(day, 0, 0, 0)}}, []string{">0<", ">1<"}, 3},
		{"over a new year", []chartSeries{{Name: "Sends", Points: dailyPoints(day, 1, 2, 3, 4)}}, []string{"30 Dec 2026", "2 Jan 2027"}, 4},
		{"fractions", []chartSeries{{Name: "Rate", Points: dailyPoints(day, 0.25, 0.5)}}, []string{">0.4<", ": 0.25<"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svg := string(lineChart("Clicks", tt.series))
			root := parseChartSVG(t, svg)
			for _, want := range tt.want {
				if !strings.Contains(svg, want) {
					t.Errorf("chart lacks %q:\n%s", want, svg)
				}
			}
			got := 0
			for _, ps := range markerCentres(t, root) {
				got += len(ps)
			}
			if got != tt.markers {
				t.Errorf("markers = %d, want %d", got, tt.markers)
			}
			if tt.markers > 0 {
				left, right, top, bottom := chartPlotBox(t, root)
				for _, ps := range markerCentres(t, root) {
					for _, p := range ps {
						if p[0] < left || p[0] > right || p[1] < top || p[1] > bottom {
							t.Errorf("point %v outside the plot", p)
						}
					}
				}
			}
		})
	}
}

func TestLineChartFormatsValuesAndKeepsIDsApart(t *testing.T) {
	t.Parallel()
	pct := func(v float64) string { return strconv.Itoa(int(v*100+0.5)) + "%" }
	svg := string(lineChart("Open rate", []chartSeries{{Name: "Open rate", Points: dailyPoints(time.Now(), 0.1, 0.42)}},
		chartOptions{ID: "open-rate-2", Desc: "Share of delivered emails opened by people.", FormatValue: pct}))
	parseChartSVG(t, svg)
	for _, want := range []string{`id="chart-open-rate-2"`, ": 42%<", ">40%<", "Share of delivered emails opened by people."} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestBarChart(t *testing.T) {
	t.Parallel()
	svg := string(barChart("Funnel", []chartBar{
		{Label: "Entered", Value: 100},
		{Label: "Welcome email with a rather long name that will not fit", Value: 40, Note: "40%"},
		{Label: "Exit", Value: 0},
	}))
	root := parseChartSVG(t, svg)
	var widths []float64
	root.walk(func(n chartSVGNode) {
		if n.XMLName.Local == "rect" {
			widths = append(widths, svgNumber(t, n.attr("width")))
		}
	})
	if len(widths) != 3 || !(widths[0] > widths[1] && widths[1] > widths[2]) || widths[2] != 0 {
		t.Errorf("bar widths = %v, want three, decreasing to 0", widths)
	}
	if !strings.Contains(svg, "Welcome email with a rather long…") || !strings.Contains(svg, "will not fit: 40 (40%)") {
		t.Errorf("long labels should be cut on the drawing and whole in the title:\n%s", svg)
	}
	if empty := string(barChart("Funnel", nil)); !strings.Contains(empty, "No data yet") {
		t.Errorf("empty bar chart: %s", empty)
	} else {
		parseChartSVG(t, empty)
	}
}

func TestChartNumber(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "0", 7: "7", 1234: "1,234", -1234567: "-1,234,567", 0.5: "0.5", 2.25: "2.25", 12.3456: "12.35"} {
		if got := chartNumber(v); got != want {
			t.Errorf("chartNumber(%v) = %q, want %q", v, got, want)
		}
	}
}
