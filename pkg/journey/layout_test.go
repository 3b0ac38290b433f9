package journey

import (
	"fmt"
	"testing"
)

func TestLayoutRowsFollowTheGraph(t *testing.T) {
	t.Parallel()
	load := func(name string) Definition {
		sc, err := LoadScenario(name)
		if err != nil {
			t.Fatal(err)
		}
		return sc.Definition
	}
	loop := Definition{Start: "a", Nodes: []Node{
		{ID: "a", Type: NodeSend, Next: "w"},
		{ID: "w", Type: NodeWaitForEvent, OnEvent: "done", OnTimeout: "a"}, // a reminder loop
		{ID: "done", Type: NodeExit},
		{ID: "orphan", Type: NodeExit},
	}}
	tests := []struct {
		name string
		d    Definition
		want string
		back int
	}{
		// done sits below tips although the branch reaches it directly.
		{"welcome", load("welcome"), "[[welcome] [wait_2_days] [ordered] [tips] [done]]", 0},
		{"abandoned cart", load("abandoned_cart"), "[[wait_order] [rescue_1] [wait_day] [rescue_2] [done]]", 0},
		{"loop and orphan", loop, "[[a] [w] [done] [orphan]]", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := tt.d.Layout()
			if got := fmt.Sprint(l.Layers); got != tt.want {
				t.Fatalf("layers %s, want %s", got, tt.want)
			}
			if len(l.Back) != tt.back {
				t.Fatalf("%d back edges, want %d", len(l.Back), tt.back)
			}
			for _, n := range tt.d.Nodes {
				if _, ok := l.Layer[n.ID]; !ok {
					t.Errorf("node %s has no layer", n.ID)
				}
			}
			for i, e := range l.Edges {
				if !l.Back[i] && l.Layer[e.To] <= l.Layer[e.From] {
					t.Errorf("forward edge %v does not point down (%d → %d)", e, l.Layer[e.From], l.Layer[e.To])
				}
			}
		})
	}
	// Every way out is an edge, with what a diagram labels it by.
	w := load("abandoned_cart").Nodes[0]
	if e := w.Edges(); len(e) != 2 || e[0].Kind != EdgeEvent || e[0].To != "done" || e[1].Kind != EdgeTimeout || e[1].To != "rescue_1" {
		t.Fatalf("wait_for_event edges %+v", e)
	}
	s := Node{ID: "s", Type: NodeSplit, Variants: []Variant{{Name: "A", Weight: 30, Next: "x"}, {Name: "B", Weight: 70, Next: "y"}}}
	if e := s.Edges(); len(e) != 2 || e[1].Label != "B · 70%" {
		t.Fatalf("split edges %+v", e)
	}
}
