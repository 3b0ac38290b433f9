package channel

// Splitting rendered bodies into what recipients share and what differs, so
// that one SendGrid request can carry up to 1,000 personalised messages.
//
// SendGrid's v3 mail/send takes one content for the whole request; what may
// differ per personalization is the subject, the headers, the custom args
// and substitutions: strings replacing keys such as -name- in the content.
// (dynamic_template_data only works with templates hosted at SendGrid;
// Parcours renders Liquid itself.) So a group of bodies is written as
//
//	part0 KEY0 part1 KEY1 ... KEYn-1 partn
//
// where the parts are the same for every recipient and each recipient's
// substitutions give its own text for every key. The holes come from a
// diff (Myers, over bytes, skipping equal runs a word at a time) of every
// body against the group's first one; a hole is the union of every
// recipient's edits at that place, widened to whole UTF-8 characters.
// Whatever is built is checked against the body it stands for before it is
// used.

import (
	"strings"
	"unicode/utf8"
)

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := 0
	for n+32 <= len(a) && n+32 <= len(b) && a[n:n+32] == b[n:n+32] {
		n += 32
	}
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// commonSuffix is the length of the longest common suffix of a and b.
func commonSuffix(a, b string) int {
	n := 0
	for n+32 <= len(a) && n+32 <= len(b) && a[len(a)-n-32:len(a)-n] == b[len(b)-n-32:len(b)-n] {
		n += 32
	}
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}

// hunk is an edit: a[aFrom:aTo] became b[bFrom:bTo], in bytes.
type hunk struct{ aFrom, aTo, bFrom, bTo int }

// differ holds the buffers of diffs, reused from one to the next.
type differ struct {
	v     []int
	trace []int
	edits []hunk
}

// diff returns the hunks that turn a into b, or false when that takes more
// than maxD byte insertions and deletions.
func (df *differ) diff(a, b string, maxD int) ([]hunk, bool) {
	pre := commonPrefix(a, b)
	suf := commonSuffix(a[pre:], b[pre:])
	edits, ok := df.myers(a[pre:len(a)-suf], b[pre:len(b)-suf], maxD)
	if !ok {
		return nil, false
	}
	// Consecutive edits form one hunk.
	var out []hunk
	for _, e := range edits {
		e = hunk{e.aFrom + pre, e.aTo + pre, e.bFrom + pre, e.bTo + pre}
		if k := len(out) - 1; k >= 0 && out[k].aTo == e.aFrom && out[k].bTo == e.bFrom {
			out[k].aTo, out[k].bTo = e.aTo, e.bTo
			continue
		}
		out = append(out, e)
	}
	return out, true
}

// myers is the greedy O((N+M)D) diff of a and b, returning single-byte edits
// in order, or false beyond maxD edits. Equal runs are skipped with
// commonPrefix, so the usual cost is about N + D².
func (df *differ) myers(a, b string, maxD int) ([]hunk, bool) {
	n, m := len(a), len(b)
	if n == 0 && m == 0 {
		return nil, true
	}
	if abs(n-m) > maxD {
		return nil, false
	}
	maxD = min(maxD, n+m)
	off := maxD + 1
	if cap(df.v) < 2*maxD+3 {
		df.v = make([]int, 2*maxD+3)
	}
	v := df.v[:2*maxD+3]
	v[off+1] = 0
	// Round d keeps v[k] for k in [-d-1, d+1] at trace[d*d+2*d + k+d+1].
	trace := df.trace[:0]
	end := -1
	for d := 0; d <= maxD && end < 0; d++ {
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			if x < n && y < m {
				l := commonPrefix(a[x:], b[y:])
				x, y = x+l, y+l
			}
			v[off+k] = x
			if x >= n && y >= m {
				end = d
				break
			}
		}
		trace = append(trace, v[off-d-1:off+d+2]...)
	}
	df.trace = trace
	if end < 0 {
		return nil, false
	}
	edits := df.edits[:0]
	x, y := n, m
	for d := end; d > 0; d-- {
		prev := trace[(d-1)*(d-1)+2*(d-1):] // v[k] at index k+d
		k := x - y
		var pk int
		if k == -d || (k != d && prev[k-1+d] < prev[k+1+d]) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := prev[pk+d]
		py := px - pk
		// Back along the snake to the edit.
		for x > px && y > py {
			x--
			y--
		}
		if x == px { // down: b[py] inserted
			edits = append(edits, hunk{x, x, py, py + 1})
		} else { // right: a[px] deleted
			edits = append(edits, hunk{px, px + 1, y, y})
		}
		x, y = px, py
	}
	df.edits = edits
	for i, j := 0, len(edits)-1; i < j; i, j = i+1, j-1 {
		edits[i], edits[j] = edits[j], edits[i]
	}
	return edits, true
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// split is a group of bodies written as shared parts around holes.
type split struct {
	// parts has len(holes)+1 entries.
	parts []string
	// values[i][h] is body i's text for hole h.
	values [][]string
}

// splitBodies writes bodies[0] and every body of the group that can be
// written against it. in[i] says whether bodies[i] is in the split; those
// left out need a group of their own. maxEdits bounds the diff of one body.
func splitBodies(bodies []string, maxEdits int) (split, []bool) {
	in := make([]bool, len(bodies))
	if len(bodies) == 0 {
		return split{}, in
	}
	ref := bodies[0]
	hunks := make([][]hunk, len(bodies))
	in[0] = true
	var all []hunk
	var df differ
	for i := 1; i < len(bodies); i++ {
		if bodies[i] == ref {
			in[i] = true
			continue
		}
		h, ok := df.diff(ref, bodies[i], maxEdits)
		if !ok {
			continue
		}
		in[i], hunks[i] = true, h
		all = append(all, h...)
	}
	// Holes: the union of every hunk's span in the reference, where spans
	// that overlap or touch merge, so that each hunk of each body lies in
	// exactly one hole and the parts between holes are identical everywhere;
	// widened to whole characters so that no value splits one.
	holes := mergeSpans(all)
	for i := range holes {
		for holes[i].aFrom > 0 && holes[i].aFrom < len(ref) && !utf8.RuneStart(ref[holes[i].aFrom]) {
			holes[i].aFrom--
		}
		for holes[i].aTo < len(ref) && !utf8.RuneStart(ref[holes[i].aTo]) {
			holes[i].aTo++
		}
	}
	holes = mergeSpans(holes)
	sp := split{parts: make([]string, 0, len(holes)+1), values: make([][]string, len(bodies))}
	prev := 0
	for _, h := range holes {
		sp.parts = append(sp.parts, ref[prev:h.aFrom])
		prev = h.aTo
	}
	sp.parts = append(sp.parts, ref[prev:])
	for i := range bodies {
		if !in[i] {
			continue
		}
		vals := make([]string, len(holes))
		delta, k := 0, 0 // offset of body i against the reference; next hunk
		for j, h := range holes {
			from := h.aFrom + delta
			for k < len(hunks[i]) && hunks[i][k].aTo <= h.aTo && hunks[i][k].aFrom <= h.aTo {
				e := hunks[i][k]
				delta += (e.bTo - e.bFrom) - (e.aTo - e.aFrom)
				k++
			}
			vals[j] = bodies[i][from : h.aTo+delta]
		}
		sp.values[i] = vals
	}
	return sp, in
}

// mergeSpans returns the union of the hunks' reference spans, sorted, with
// overlapping or touching spans merged (an empty span is an insertion point).
func mergeSpans(hs []hunk) []hunk {
	if len(hs) == 0 {
		return nil
	}
	sorted := append([]hunk(nil), hs...)
	sortHunks(sorted)
	out := []hunk{{aFrom: sorted[0].aFrom, aTo: sorted[0].aTo}}
	for _, h := range sorted[1:] {
		last := &out[len(out)-1]
		if h.aFrom <= last.aTo {
			last.aTo = max(last.aTo, h.aTo)
			continue
		}
		out = append(out, hunk{aFrom: h.aFrom, aTo: h.aTo})
	}
	return out
}

func sortHunks(hs []hunk) {
	// Insertion sort is enough for small inputs; fall back to a merge sort.
	if len(hs) < 32 {
		for i := 1; i < len(hs); i++ {
			for j := i; j > 0 && less(hs[j], hs[j-1]); j-- {
				hs[j], hs[j-1] = hs[j-1], hs[j]
			}
		}
		return
	}
	mid := len(hs) / 2
	left := append([]hunk(nil), hs[:mid]...)
	right := append([]hunk(nil), hs[mid:]...)
	sortHunks(left)
	sortHunks(right)
	i, j := 0, 0
	for k := range hs {
		if j >= len(right) || i < len(left) && !less(right[j], left[i]) {
			hs[k] = left[i]
			i++
		} else {
			hs[k] = right[j]
			j++
		}
	}
}

func less(a, b hunk) bool { return a.aFrom < b.aFrom || a.aFrom == b.aFrom && a.aTo < b.aTo }

// rebuilds says whether parts interleaved with vals spell body, without
// building the string.
func (sp split) rebuilds(body string, vals []string) bool {
	pos := 0
	take := func(s string) bool {
		if !strings.HasPrefix(body[pos:], s) {
			return false
		}
		pos += len(s)
		return true
	}
	for j, p := range sp.parts {
		if !take(p) {
			return false
		}
		if j < len(vals) && !take(vals[j]) {
			return false
		}
	}
	return pos == len(body)
}
