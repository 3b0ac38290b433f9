package journey

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// Node changes between a published version and the draft.
const (
	NodeUnchanged = "unchanged"
	NodeChanged   = "changed"
	NodeRemoved   = "removed"
)

// NodeImpact is how many runs in flight sit on a node of a version, and
// what the draft does to that node.
type NodeImpact struct {
	Version int    `json:"version"`
	Node    string `json:"node"`
	Runs    int    `json:"runs"`
	Change  string `json:"change"`
}

// Impact is what publishing the draft would change. Runs in flight keep
// the version they started on; the figures say how many of them sit on
// nodes the new version removes or changes, so the marketer knows how
// many people finish on the old path.
type Impact struct {
	FromVersion   *int         `json:"from_version,omitempty"`
	ToVersion     int          `json:"to_version"`
	Added         []string     `json:"added"`
	Removed       []string     `json:"removed"`
	Changed       []string     `json:"changed"`
	RunsInFlight  int          `json:"runs_in_flight"`
	RunsOnRemoved int          `json:"runs_on_removed"`
	RunsOnChanged int          `json:"runs_on_changed"`
	Nodes         []NodeImpact `json:"nodes"`
}

// Impact compares the draft with the published versions that still have
// runs in flight (and with the latest version for the node lists).
func (s *Store) Impact(ctx context.Context, workspaceID, id string) (Impact, error) {
	j, err := s.Get(ctx, workspaceID, id)
	if err != nil {
		return Impact{}, err
	}
	out := Impact{ToVersion: 1, Added: []string{}, Removed: []string{}, Changed: []string{}, Nodes: []NodeImpact{}}
	draft := nodeJSON(j.Draft)
	if j.PublishedVersion != nil {
		v := *j.PublishedVersion
		out.FromVersion, out.ToVersion = &v, v+1
		latest, err := s.Version(ctx, workspaceID, id, v)
		if err != nil {
			return out, err
		}
		old := nodeJSON(latest)
		for _, n := range j.Draft.Nodes {
			if _, ok := old[n.ID]; !ok {
				out.Added = append(out.Added, n.ID)
			}
		}
		for _, n := range latest.Nodes {
			switch {
			case draft[n.ID] == "":
				out.Removed = append(out.Removed, n.ID)
			case draft[n.ID] != old[n.ID]:
				out.Changed = append(out.Changed, n.ID)
			}
		}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT version, coalesce(node, ''), count(*) FROM journey_runs
		WHERE workspace_id = $1 AND journey_id = $2 AND ended_at IS NULL
		GROUP BY version, node ORDER BY version, node`, workspaceID, id)
	if err != nil {
		return out, fmt.Errorf("count runs in flight of %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ni NodeImpact
		if err := rows.Scan(&ni.Version, &ni.Node, &ni.Runs); err != nil {
			return out, err
		}
		out.Nodes = append(out.Nodes, ni)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	defs := map[int]map[string]string{}
	for i, ni := range out.Nodes {
		old, ok := defs[ni.Version]
		if !ok {
			d, err := s.Version(ctx, workspaceID, id, ni.Version)
			if err != nil {
				return out, err
			}
			old = nodeJSON(d)
			defs[ni.Version] = old
		}
		switch {
		case draft[ni.Node] == "":
			out.Nodes[i].Change = NodeRemoved
			out.RunsOnRemoved += ni.Runs
		case draft[ni.Node] != old[ni.Node]:
			out.Nodes[i].Change = NodeChanged
			out.RunsOnChanged += ni.Runs
		default:
			out.Nodes[i].Change = NodeUnchanged
		}
		out.RunsInFlight += ni.Runs
	}
	slices.Sort(out.Added)
	slices.Sort(out.Removed)
	slices.Sort(out.Changed)
	return out, nil
}

// nodeJSON maps node ids to their canonical JSON, for comparison.
func nodeJSON(d Definition) map[string]string {
	out := make(map[string]string, len(d.Nodes))
	for _, n := range d.Nodes {
		raw, _ := json.Marshal(n)
		out[n.ID] = string(raw)
	}
	return out
}
