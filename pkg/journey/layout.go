package journey

import (
	"slices"
	"strconv"
)

// Edge kinds: how a run goes from one node to the next.
const (
	EdgeNext      = "next"       // the only way on
	EdgeEvent     = "event"      // a wait_for_event's event came
	EdgeTimeout   = "timeout"    // a wait_for_event's timeout passed
	EdgeBranch    = "branch"     // a branch's condition held (Label: the condition)
	EdgeElse      = "else"       // no branch condition held
	EdgeVariant   = "variant"    // a split's variant (Label: "name · weight%")
	EdgeOnMissing = "on_missing" // a date wait for a profile without the date
)

// Edge is one arrow of a journey's graph.
type Edge struct {
	From, To, Kind string
	// Label is the condition of a branch, the variant of a split, else "".
	Label string
}

// Edges lists the ways out of a node, in the order the definition gives them.
func (n Node) Edges() []Edge {
	var out []Edge
	add := func(to, kind, label string) {
		if to != "" {
			out = append(out, Edge{From: n.ID, To: to, Kind: kind, Label: label})
		}
	}
	switch n.Type {
	case NodeWaitForEvent:
		add(n.OnEvent, EdgeEvent, "")
		add(n.OnTimeout, EdgeTimeout, "")
	case NodeBranch:
		for _, b := range n.Branches {
			add(b.Next, EdgeBranch, b.Condition)
		}
		add(n.Else, EdgeElse, "")
	case NodeSplit:
		for _, v := range n.Variants {
			add(v.Next, EdgeVariant, v.Name+" · "+strconv.Itoa(v.Weight)+"%")
		}
	default:
		add(n.Next, EdgeNext, "")
		if n.Type == NodeWait {
			add(n.OnMissing, EdgeOnMissing, "")
		}
	}
	return out
}

// Layout places a journey's nodes for drawing top to bottom: Layers[i] are
// the node ids of row i. A node sits one row below the lowest node that
// leads to it (loops aside), so every forward arrow points down; Back marks
// the edges (by index in Edges) that point back up a loop. Nodes the start
// does not reach come last, in a row of their own.
type Layout struct {
	Layers [][]string
	Edges  []Edge
	Back   map[int]bool
	// Layer of each node id.
	Layer map[string]int
}

// Layout computes the drawing order of d's graph.
func (d Definition) Layout() Layout {
	byID := map[string]Node{}
	for _, n := range d.Nodes {
		if _, dup := byID[n.ID]; !dup {
			byID[n.ID] = n
		}
	}
	out := Layout{Back: map[int]bool{}, Layer: map[string]int{}}
	edgesOf := map[string][]int{} // node → indexes of its edges
	for _, n := range d.Nodes {
		for _, e := range n.Edges() {
			if _, ok := byID[e.To]; !ok {
				continue // a dangling reference: validation reports it
			}
			edgesOf[n.ID] = append(edgesOf[n.ID], len(out.Edges))
			out.Edges = append(out.Edges, e)
		}
	}
	// Back edges: those that close a loop in a depth-first walk from start.
	state := map[string]int{} // 0 new, 1 on the stack, 2 done
	var order []string        // discovery order
	var walk func(id string)
	walk = func(id string) {
		state[id] = 1
		order = append(order, id)
		for _, i := range edgesOf[id] {
			switch to := out.Edges[i].To; state[to] {
			case 0:
				walk(to)
			case 1:
				out.Back[i] = true
			}
		}
		state[id] = 2
	}
	reached := map[string]bool{}
	if _, ok := byID[d.Start]; ok {
		walk(d.Start)
		for _, id := range order {
			reached[id] = true
			out.Layer[id] = 0
		}
	}
	// Longest path over the forward edges, in topological order (Kahn).
	indeg := map[string]int{}
	for i, e := range out.Edges {
		if !out.Back[i] && reached[e.From] {
			indeg[e.To]++
		}
	}
	var queue []string
	for _, id := range order {
		if indeg[id] == 0 {
			queue = append(queue, id)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, i := range edgesOf[id] {
			if out.Back[i] {
				continue
			}
			to := out.Edges[i].To
			out.Layer[to] = max(out.Layer[to], out.Layer[id]+1)
			if indeg[to]--; indeg[to] == 0 {
				queue = append(queue, to)
			}
		}
	}
	rows := 0
	for _, id := range order {
		rows = max(rows, out.Layer[id]+1)
	}
	out.Layers = make([][]string, rows)
	rank := map[string]int{}
	for i, id := range order {
		rank[id] = i
	}
	for _, id := range order {
		out.Layers[out.Layer[id]] = append(out.Layers[out.Layer[id]], id)
	}
	// Within a row, follow the parents' order, so that arrows cross less.
	pos := map[string]float64{}
	for l, row := range out.Layers {
		key := map[string]float64{}
		for _, id := range row {
			sum, n := 0.0, 0
			for i, e := range out.Edges {
				if e.To == id && !out.Back[i] && out.Layer[e.From] < l {
					sum += pos[e.From]
					n++
				}
			}
			key[id] = float64(rank[id])
			if n > 0 {
				key[id] = sum / float64(n)
			}
		}
		slices.SortStableFunc(row, func(a, b string) int {
			switch {
			case key[a] < key[b]:
				return -1
			case key[a] > key[b]:
				return 1
			}
			return rank[a] - rank[b]
		})
		for i, id := range row {
			pos[id] = float64(i)
		}
	}
	var lost []string
	for _, n := range d.Nodes {
		if !reached[n.ID] && !slices.Contains(lost, n.ID) {
			lost = append(lost, n.ID)
			out.Layer[n.ID] = rows
		}
	}
	if len(lost) > 0 {
		out.Layers = append(out.Layers, lost)
	}
	return out
}
