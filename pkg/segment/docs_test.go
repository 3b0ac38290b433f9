package segment_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/segment"
)

// Every segment example in docs/rules.md compiles and evaluates.
func TestDocumentedExamplesCompile(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	section = section[strings.Index(section, "### Examples"):]
	block := regexp.MustCompile("(?s)```\n(.*?)```").FindStringSubmatch(section)[1]
	n := 0
	for _, line := range strings.Split(block, "\n") {
		rule, _, _ := strings.Cut(line, "#")
		if rule = strings.TrimSpace(rule); rule == "" {
			continue
		}
		n++
		r, err := segment.Compile(rule)
		if err != nil {
			t.Errorf("documented example %q: %v", rule, err)
			continue
		}
		if _, err := r.Evaluate(data(), now); err != nil {
			t.Errorf("documented example %q fails to evaluate: %v", rule, err)
		}
	}
	if n < 5 {
		t.Fatalf("found %d examples", n)
	}
}
