package template

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/filters"
	"github.com/osteele/liquid/render"
	"github.com/osteele/liquid/values"
)

// Limits of one template. Each is a constant, not a setting: a message that
// passes one is a runaway loop or a template built to exhaust the server
// (one API pod renders previews for every workspace), not an email. A limit
// passed stops the rendering itself, in the goroutine that called Render:
// nothing keeps running after Render returns.
const (
	// MaxSource caps each part's source, with its partials rendered in.
	MaxSource = 256 << 10
	// MaxOutput caps each rendered part. Email providers and clients reject
	// or clip far smaller messages (Gmail clips HTML above 102 KB).
	MaxOutput = 512 << 10
	// MaxBuilt caps the text one rendering (all four parts) builds besides
	// its output: what string and list filters (append, prepend, replace,
	// join, split, escape, ...) return and what {% capture %} records,
	// counted as it is built, before the filter allocates it when the size
	// can be known in advance; what a capture records counts four times
	// (captureCost). Text that is only passed along (a trait, `default`,
	// `first`) costs nothing.
	MaxBuilt = 4 << 20
	// MaxIterations caps the loop iterations of one rendering, all loops
	// and parts together: {% for %} and {% tablerow %}, nested or not. A
	// message lists a few dozen items; the cap also stops loops that write
	// nothing, which no output limit sees.
	MaxIterations = 10_000
	// MaxRange caps the numbers a range written in a template holds
	// ({% for i in (1..10000) %}), checked when the template compiles, and
	// the items of any list or range a filter is given while rendering.
	MaxRange = 10_000
	// Timeout bounds one rendering of all parts, checked at every loop
	// iteration, filter and write. A template loops only over data the
	// profile holds, so two seconds are generous.
	Timeout = 2 * time.Second
)

// Errors of rendering: the limit a template passed. Render returns them
// inside a *CompileError naming the part and the line (errors.Is finds
// them), except when the caller's own context ends.
var (
	// ErrTooLarge: a rendered part passed MaxOutput.
	ErrTooLarge = fmt.Errorf("rendered output exceeds %d KB", MaxOutput>>10)
	// ErrTimeout: the rendering took longer than Timeout (or than the
	// caller's deadline).
	ErrTimeout = fmt.Errorf("rendering took longer than %s", Timeout)
	// ErrTooMuchText: filters and captures built more than MaxBuilt.
	ErrTooMuchText = fmt.Errorf("this template builds more than %d MiB of text (what append, prepend, replace, join, capture and the like build is counted): build less text, or loop over fewer items", MaxBuilt>>20)
	// ErrTooManyIterations: loops ran more than MaxIterations times.
	ErrTooManyIterations = fmt.Errorf("loops run more than %d times in one message: loop over fewer items (for … limit: 50)", MaxIterations)
	// ErrListTooLong: a filter was given more than MaxRange items.
	ErrListTooLong = fmt.Errorf("a filter was given a list or range of more than %d items: use fewer, or a shorter range", MaxRange)
)

// budget is what one rendering may still spend. One goroutine uses it.
type budget struct {
	ctx        context.Context
	built      int
	iterations int
	err        error // the first limit passed; every later check returns it
}

func (b *budget) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// live fails once a limit was passed or the context is done.
func (b *budget) live() error {
	if b.err != nil {
		return b.err
	}
	if err := b.ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return b.fail(ErrTimeout)
		}
		return b.fail(err)
	}
	return nil
}

// afford fails if n more bytes would pass MaxBuilt, without counting them.
func (b *budget) afford(n int) error {
	if err := b.live(); err != nil {
		return err
	}
	if n > MaxBuilt-b.built {
		return b.fail(ErrTooMuchText)
	}
	return nil
}

// build counts n bytes built.
func (b *budget) build(n int) error {
	if err := b.afford(n); err != nil {
		return err
	}
	b.built += n
	return nil
}

// iterate counts one loop iteration.
func (b *budget) iterate() error {
	if err := b.live(); err != nil {
		return err
	}
	if b.iterations++; b.iterations > MaxIterations {
		return b.fail(ErrTooManyIterations)
	}
	return nil
}

// budgetKey binds the rendering's budget among the template's variables,
// where the loop and capture tags find it. It is not a Liquid identifier,
// so no template can read it.
const budgetKey = " budget"

// budgetOf returns the budget of the rendering ctx belongs to. A rendering
// without one (which Render never starts) gets an exhausted budget.
func budgetOf(ctx render.Context) *budget {
	if b, ok := ctx.Get(budgetKey).(*budget); ok {
		return b
	}
	return &budget{ctx: context.Background(), err: errors.New("rendering without a budget")}
}

// outputWriter holds one rendered part, up to MaxOutput; it fails, which
// stops the renderer, once the part is too large or the budget is spent.
type outputWriter struct {
	b   *budget
	buf strings.Builder
}

func (w *outputWriter) Write(p []byte) (int, error) {
	if err := w.b.live(); err != nil {
		return 0, err
	}
	if w.buf.Len()+len(p) > MaxOutput {
		return 0, w.b.fail(ErrTooLarge)
	}
	return w.buf.Write(p)
}

// captureCost is what a byte recorded by {% capture %} counts in the
// budget: on its way to the variable the library copies each value it
// writes three times (printing it, into bytes, into its whitespace
// buffer), and the variable grows by doubling.
const captureCost = 4

// buildWriter holds what a {% capture %} records, counted in the budget.
type buildWriter struct {
	b   *budget
	buf strings.Builder
}

func (w *buildWriter) Write(p []byte) (int, error) {
	if err := w.b.build(captureCost * len(p)); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

// renderer is a render configuration whose filters spend the budget of
// the rendering it serves. Filters see only their arguments, so each
// renderer has its own set, bound to its b; renderers are pooled and
// serve one rendering at a time.
type renderer struct {
	cfg render.Config
	b   *budget
}

var renderers = sync.Pool{New: func() any { return newRenderer() }}

func newRenderer() *renderer {
	r := &renderer{cfg: grammar}
	var fc expressions.Config
	for _, f := range filterDefs {
		fc.AddFilter(f.name, f.bind(r))
	}
	// The parse configuration has no filters (they are looked up while
	// rendering): this one has the budgeted set.
	r.cfg.Config.Config = fc
	return r
}

// A filterDef wraps a Liquid filter so that it spends the budget.
type filterDef struct {
	name string
	fn   reflect.Value
	typ  reflect.Type // the wrapper: list parameters taken as any, and an error result
	// lists are the parameters that take a list: the wrapper checks the
	// length before the library's conversion would copy a range or a map
	// into a slice.
	lists []reflect.Type // nil for the others
	// strs are the string parameters, taken as any too: the library
	// converts a string argument with fmt.Sprint, a copy of every string
	// at every filter.
	strs []bool
	// bound returns an upper bound of the bytes the filter builds from its
	// (converted) arguments, checked before the call; nil for filters that
	// return one of their inputs, part of it, or a number, which build
	// nothing worth counting.
	bound  func(args []reflect.Value) int
	hasErr bool
}

var (
	errorType  = reflect.TypeOf((*error)(nil)).Elem()
	anyType    = reflect.TypeOf((*any)(nil)).Elem()
	stringType = reflect.TypeOf("")
)

func newFilterDef(name string, fn any) filterDef {
	f := filterDef{name: name, fn: reflect.ValueOf(fn), bound: boundOf(name)}
	ft := f.fn.Type()
	in := make([]reflect.Type, ft.NumIn())
	f.lists = make([]reflect.Type, ft.NumIn())
	f.strs = make([]bool, ft.NumIn())
	for i := range in {
		in[i] = ft.In(i)
		switch k := in[i].Kind(); {
		case k == reflect.Slice || k == reflect.Array:
			f.lists[i], in[i] = in[i], anyType
		case in[i] == stringType:
			f.strs[i], in[i] = true, anyType
		}
	}
	f.hasErr = ft.NumOut() == 2
	f.typ = reflect.FuncOf(in, []reflect.Type{ft.Out(0), errorType}, ft.IsVariadic())
	return f
}

// bind returns the filter as the library calls it, spending r's budget.
func (f filterDef) bind(r *renderer) any {
	out0 := f.fn.Type().Out(0)
	fail := func(err error) []reflect.Value {
		return []reflect.Value{reflect.Zero(out0), reflect.ValueOf(&err).Elem()}
	}
	return reflect.MakeFunc(f.typ, func(args []reflect.Value) (results []reflect.Value) {
		b := r.b
		if b == nil {
			return fail(errors.New("rendering without a budget"))
		}
		if err := b.live(); err != nil {
			return fail(err)
		}
		args = append([]reflect.Value(nil), args...)
		for i := range args {
			var v reflect.Value
			var err error
			switch {
			case i >= len(f.lists):
				continue
			case f.lists[i] != nil:
				v, err = toList(b, args[i].Interface(), f.lists[i])
			case f.strs[i]:
				v, err = toString(args[i].Interface())
			default:
				continue
			}
			if err != nil {
				return fail(err)
			}
			args[i] = v
		}
		if f.bound != nil {
			if err := b.afford(f.bound(args)); err != nil {
				return fail(err)
			}
		}
		defer func() {
			// The library's filters panic on some input (truncate: 5000
			// compiles a regular expression it cannot): say which filter.
			if p := recover(); p != nil {
				results = fail(fmt.Errorf("%v", p))
			}
		}()
		var out []reflect.Value
		if f.typ.IsVariadic() {
			out = f.fn.CallSlice(args)
		} else {
			out = f.fn.Call(args)
		}
		if f.hasErr && !out[1].IsNil() {
			return fail(out[1].Interface().(error))
		}
		if f.bound != nil {
			if err := b.build(sizeOf(out[0])); err != nil {
				return fail(err)
			}
		}
		return []reflect.Value{out[0], reflect.Zero(errorType)}
	}).Interface()
}

// toList converts v to the list type t as the library would, once its
// length is within MaxRange; a copy made counts in the budget.
func toList(b *budget, v any, t reflect.Type) (reflect.Value, error) {
	if v == nil {
		return reflect.Zero(t), nil
	}
	n := 0
	switch x := v.(type) {
	case values.Range:
		n = x.Len()
	default:
		switch rv := reflect.ValueOf(v); rv.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			n = rv.Len()
		}
	}
	if n < 0 || n > MaxRange {
		return reflect.Value{}, b.fail(ErrListTooLong)
	}
	if reflect.TypeOf(v) != t {
		if err := b.build(16 * n); err != nil {
			return reflect.Value{}, err
		}
	}
	c, err := values.Convert(v, t)
	if err != nil {
		return reflect.Value{}, err
	}
	return reflect.ValueOf(c), nil
}

// toString converts v to a string as the library would, without copying a
// string.
func toString(v any) (reflect.Value, error) {
	switch x := v.(type) {
	case nil:
		return reflect.ValueOf(""), nil
	case string:
		return reflect.ValueOf(x), nil
	}
	c, err := values.Convert(v, stringType)
	if err != nil {
		return reflect.Value{}, err
	}
	return reflect.ValueOf(c), nil
}

// sizeOf is what a filter's result counts in the budget: a string's bytes,
// a list's item headers (its strings are usually shared with the input).
func sizeOf(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return sizeOf(v.Elem())
	case reflect.String:
		return v.Len()
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Len()
		}
		return 16 * v.Len()
	}
	return 0
}

// deepSize estimates the bytes v prints to, stopping past limit.
func deepSize(v any, limit int) int {
	n := 0
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		if n > limit {
			return
		}
		switch rv.Kind() {
		case reflect.Interface, reflect.Pointer:
			if !rv.IsNil() {
				walk(rv.Elem())
			} else {
				n += 4
			}
		case reflect.String:
			n += rv.Len() + 2
		case reflect.Slice, reflect.Array:
			n += 2
			for i := 0; i < rv.Len() && n <= limit; i++ {
				n++
				walk(rv.Index(i))
			}
		case reflect.Map:
			n += 2
			it := rv.MapRange()
			for it.Next() && n <= limit {
				n += 2
				walk(it.Key())
				walk(it.Value())
			}
		default:
			n += 24
		}
	}
	walk(reflect.ValueOf(v))
	return n
}

func str(v reflect.Value) string {
	if v.Kind() == reflect.String {
		return v.String()
	}
	return ""
}

// withDefault calls a Liquid optional argument (func(T) T: the argument,
// or the default it is given).
func withDefault(v reflect.Value, def any) reflect.Value {
	if v.Kind() != reflect.Func || v.IsNil() {
		return reflect.ValueOf(def)
	}
	return v.Call([]reflect.Value{reflect.ValueOf(def)})[0]
}

// defaultBound: the strings given, and a header per list item.
func defaultBound(args []reflect.Value) int {
	n := 0
	for _, a := range args {
		n += sizeOf(a)
	}
	return n
}

func times(k int) func([]reflect.Value) int {
	return func(a []reflect.Value) int { return k * len(str(a[0])) }
}

// boundOf returns how to bound what the named filter builds.
func boundOf(name string) func([]reflect.Value) int {
	switch name {
	case "default", "first", "last", "size", "type", "strip", "lstrip", "rstrip", "slice",
		"abs", "ceil", "floor", "modulo", "minus", "plus", "times", "divided_by", "round":
		return nil
	case "replace":
		return func(a []reflect.Value) int {
			s, old, new := str(a[0]), str(a[1]), str(a[2])
			if len(new) <= len(old) {
				return len(s)
			}
			return len(s) + strings.Count(s, old)*(len(new)-len(old))
		}
	case "replace_first":
		return func(a []reflect.Value) int { return len(str(a[0])) + len(str(a[2])) }
	case "escape", "escape_once":
		return times(5) // " and ' become &#34; and &#39;
	case "newline_to_br":
		return times(6) // "\n" becomes "<br />"
	case "url_encode":
		return times(3)
	case "upcase", "downcase", "capitalize":
		return times(3) // case mapping can lengthen a rune's UTF-8 form
	case "truncate", "truncatewords":
		return func(a []reflect.Value) int { return len(str(a[0])) + len(str(withDefault(a[2], "..."))) }
	case "date":
		return func(a []reflect.Value) int { return 64 + 32*len(str(withDefault(a[1], "%a, %b %d, %y"))) }
	case "json", "inspect":
		return func(a []reflect.Value) int { return 6 * deepSize(a[0].Interface(), MaxBuilt) }
	case "join":
		return func(a []reflect.Value) int {
			sep := len(str(withDefault(a[1], " ")))
			n := 0
			if a[0].Kind() == reflect.Slice {
				for i := range a[0].Len() {
					n += sep + deepSize(a[0].Index(i).Interface(), MaxBuilt)
					if n > MaxBuilt {
						break
					}
				}
			}
			return n
		}
	case "split":
		return func(a []reflect.Value) int {
			s, sep := str(a[0]), str(a[1])
			if sep == " " {
				return 16 * (fields(s) + 1)
			}
			return 16 * (strings.Count(s, sep) + 1)
		}
	case "uniq":
		return func(a []reflect.Value) int { return 16*a[0].Len() + deepSize(a[0].Interface(), MaxBuilt) }
	}
	return defaultBound
}

// fields counts the runs of white space in s.
func fields(s string) int {
	n, in := 0, false
	for _, r := range s {
		sp := unicode.IsSpace(r)
		if sp && !in {
			n++
		}
		in = sp
	}
	return n
}

// filterDefs are the standard Liquid filters, budgeted, with slice and
// uniq replaced: the library's slice copies the string to runes (four
// times its size) and its uniq compares lists and maps pairwise.
var filterDefs = func() []filterDef {
	std := filterSet{}
	filters.AddStandardFilters(std)
	std["slice"] = sliceFilter
	std["uniq"] = uniqFilter
	defs := make([]filterDef, 0, len(std))
	for name, fn := range std {
		defs = append(defs, newFilterDef(name, fn))
	}
	return defs
}()

type filterSet map[string]any

func (s filterSet) AddFilter(name string, fn any) { s[name] = fn }

// sliceFilter is Liquid's slice on a string: length runes from start (from
// the end when negative), without copying the string.
func sliceFilter(s string, start int, length func(int) int) string {
	n := length(1)
	if start < 0 {
		start += utf8.RuneCountInString(s)
		if start < 0 {
			return ""
		}
	}
	i := 0
	for ; start > 0 && i < len(s); start-- {
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	j := i
	for ; n > 0 && j < len(s); n-- {
		_, w := utf8.DecodeRuneInString(s[j:])
		j += w
	}
	return s[i:j]
}

// uniqFilter is Liquid's uniq in one pass: lists and maps are compared by
// their printed form.
func uniqFilter(a []any) []any {
	var out []any
	seen := map[any]bool{}
	for _, item := range a {
		key := item
		if item != nil && !reflect.TypeOf(item).Comparable() {
			key = fmt.Sprintf("%T %#v", item, item)
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, item)
		}
	}
	return out
}

// rangeRe finds a range written with numbers, (1..100000).
var (
	rangeRe  = regexp.MustCompile(`\(\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*\)`)
	quotedRe = regexp.MustCompile(`"[^"]*"|'[^']*'`)
)

// checkRanges refuses a range literal holding more than MaxRange numbers
// anywhere in the compiled template.
func checkRanges(field string, n render.Node) error {
	check := func(args string, line int) error {
		args = quotedRe.ReplaceAllString(args, `""`)
		for _, m := range rangeRe.FindAllStringSubmatch(args, -1) {
			from, err1 := strconv.ParseInt(m[1], 10, 64)
			to, err2 := strconv.ParseInt(m[2], 10, 64)
			if err1 == nil && err2 == nil && to-from < MaxRange {
				continue
			}
			held := "more than " + strconv.Itoa(MaxRange)
			if err1 == nil && err2 == nil {
				held = strconv.FormatInt(to-from+1, 10)
			}
			return &CompileError{Field: field, Line: line,
				Message: fmt.Sprintf("the range %s holds %s numbers; a range holds at most %d", m[0], held, MaxRange)}
		}
		return nil
	}
	var walk func(n render.Node) error
	walk = func(n render.Node) error {
		switch n := n.(type) {
		case *render.SeqNode:
			for _, c := range n.Children {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *render.ObjectNode:
			return check(n.Args, n.SourceLoc.LineNo)
		case *render.TagNode:
			return check(n.Args, n.SourceLoc.LineNo)
		case *render.BlockNode:
			if err := check(n.Args, n.SourceLoc.LineNo); err != nil {
				return err
			}
			for _, c := range n.Body {
				if err := walk(c); err != nil {
					return err
				}
			}
			for _, c := range n.Clauses {
				if err := walk(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(n)
}
