package ingest

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parcours/parcours/pkg/events"
)

// GroupCommitter commits concurrent small calls (single /v1/track, ...)
// together: calls that arrive while a commit is in flight are gathered and
// written in the next transaction, so that many calls share one WAL flush.
// Each call still returns only after its records are committed, with its own
// result; a group that fails is retried call by call, so one bad call never
// fails the others.
type GroupCommitter struct {
	store *Store
	in    chan *groupCall
	// MaxCalls caps a group.
	maxCalls int
}

type groupCall struct {
	ctx     context.Context
	origin  Origin
	msgs    []events.Message
	rejects []Rejection
	done    chan groupResult
}

type groupResult struct {
	res Result
	err error
}

// NewGroupCommitter starts a committer over store; it runs until ctx ends.
func NewGroupCommitter(ctx context.Context, store *Store) *GroupCommitter {
	g := &GroupCommitter{store: store, in: make(chan *groupCall, 1024), maxCalls: 256}
	go g.loop(ctx)
	return g
}

// Ingest is Store.Ingest, committed together with concurrent calls.
func (g *GroupCommitter) Ingest(ctx context.Context, o Origin, msgs []events.Message, rejects []Rejection) (Result, error) {
	c := &groupCall{ctx: ctx, origin: o, msgs: msgs, rejects: rejects, done: make(chan groupResult, 1)}
	select {
	case g.in <- c:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	// Wait for the commit even if the caller gives up: the records may be
	// committed, and the answer must not claim otherwise.
	r := <-c.done
	return r.res, r.err
}

func (g *GroupCommitter) loop(ctx context.Context) {
	for {
		var first *groupCall
		select {
		case <-ctx.Done():
			return
		case first = <-g.in:
		}
		group := []*groupCall{first}
		// Take whatever queued up while the previous group was committing.
	gather:
		for len(group) < g.maxCalls {
			select {
			case c := <-g.in:
				group = append(group, c)
			default:
				break gather
			}
		}
		g.commit(group)
	}
}

// commit writes a group in one transaction, or call by call if that fails.
func (g *GroupCommitter) commit(group []*groupCall) {
	if len(group) == 1 {
		c := group[0]
		res, err := g.store.Ingest(c.ctx, c.origin, c.msgs, c.rejects)
		c.done <- groupResult{res, err}
		return
	}
	// The group's own deadline: callers' contexts may end, their records not.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make([]Result, len(group))
	err := g.store.inTx(ctx, func(tx pgx.Tx) error {
		for i := range results {
			results[i] = Result{}
		}
		// One ingest per origin (workspace and key): the calls' records go
		// through as one batch, then each call gets its own records' outcomes.
		byOrigin := map[Origin][]int{}
		var origins []Origin
		for i, c := range group {
			if err := insertRejects(ctx, tx, c.origin, c.rejects); err != nil {
				return err
			}
			if _, ok := byOrigin[c.origin]; !ok {
				origins = append(origins, c.origin)
			}
			byOrigin[c.origin] = append(byOrigin[c.origin], i)
		}
		for _, o := range origins {
			var all []events.Message
			for _, i := range byOrigin[o] {
				all = append(all, group[i].msgs...)
			}
			if len(all) == 0 {
				continue
			}
			r, err := g.store.ingestTx(ctx, tx, o, all)
			if err != nil {
				return err
			}
			at := 0
			for n, i := range byOrigin[o] {
				res := &results[i]
				for range group[i].msgs {
					switch r.Outcomes[at] {
					case OutcomeAccepted:
						res.Accepted++
					case OutcomeDuplicate:
						res.Duplicates++
					case OutcomeSuppressed:
						res.Suppressed++
					}
					at++
				}
				if n == 0 { // the first call of the workspace refreshes segments and journeys for all
					res.Changes, res.Stored, res.Merges, res.Conflicts = r.Changes, r.Stored, r.Merges, r.Conflicts
				}
			}
		}
		return nil
	})
	if err == nil {
		for i, c := range group {
			c.done <- groupResult{res: results[i]}
		}
		return
	}
	for _, c := range group { // isolate the failure
		res, err := g.store.Ingest(ctx, c.origin, c.msgs, c.rejects)
		c.done <- groupResult{res, err}
	}
}
