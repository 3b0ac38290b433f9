package journey

import (
	"embed"
	"fmt"
	"slices"
	"strings"
)

// scenarioFS holds the scenario templates the white paper names: welcome,
// abandoned-cart rescue, resend to non-openers, thank-you when a prospect
// becomes a customer.
//
//go:embed scenarios/*.json
var scenarioFS embed.FS

// Scenario is a ready-made journey and what it needs to run.
type Scenario struct {
	Name string `json:"name"`
	// Title and Description tell a marketer what the scenario does.
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Definition  Definition `json:"definition"`
	// Templates the send nodes use, and the segment a segment trigger reads:
	// create them before publishing.
	Templates []string `json:"templates"`
	Segment   string   `json:"segment,omitempty"`
}

// Scenarios lists the names of the built-in scenarios.
func Scenarios() []string {
	entries, _ := scenarioFS.ReadDir("scenarios")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	slices.Sort(out)
	return out
}

// LoadScenario returns a built-in scenario by name.
func LoadScenario(name string) (Scenario, error) {
	if !slices.Contains(Scenarios(), name) {
		return Scenario{}, fmt.Errorf("no scenario %q; there are %s", name, strings.Join(Scenarios(), ", "))
	}
	raw, err := scenarioFS.ReadFile("scenarios/" + name + ".json")
	if err != nil {
		return Scenario{}, err
	}
	d, err := Parse(raw)
	if err != nil {
		return Scenario{}, err
	}
	s := Scenario{Name: name, Title: scenarioTexts[name].Title, Description: scenarioTexts[name].Description, Definition: d, Segment: d.Trigger.Segment}
	for _, n := range d.Nodes {
		if n.Type == NodeSend && !slices.Contains(s.Templates, n.Template) {
			s.Templates = append(s.Templates, n.Template)
		}
	}
	return s, nil
}
