package template

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"

	"github.com/osteele/liquid/expressions"
	"github.com/osteele/liquid/render"
	"github.com/osteele/liquid/tags"
	"github.com/osteele/liquid/values"
)

// grammar is the Liquid configuration templates are parsed with: the
// standard tags, with the ones that loop or record text defined here so
// that they spend the rendering's budget. The library registers all its
// tags at once and a tag cannot be defined twice, so the control-flow tags
// are defined here too, following github.com/osteele/liquid v1.6.0's
// (MIT licence); assign and cycle are the library's own.
var grammar = newGrammar()

func newGrammar() render.Config {
	std := render.NewConfig()
	tags.AddStandardTags(std)
	c := render.NewConfig()
	for _, name := range []string{"assign", "cycle"} {
		td, ok := std.FindTagDefinition(name)
		if !ok {
			panic("liquid has no " + name + " tag")
		}
		c.AddTag(name, td)
	}
	// {% include %} reads files from the server's disk: never from a
	// marketer's template. Partials are rendered in from the database
	// before parsing (Store.Resolve).
	c.AddTag("include", func(string) (func(io.Writer, render.Context) error, error) {
		return func(io.Writer, render.Context) error { return errors.New("{% include %} is not supported") }, nil
	})
	c.AddTag("break", func(string) (func(io.Writer, render.Context) error, error) {
		return func(_ io.Writer, ctx render.Context) error { return ctx.WrapError(errBreak) }, nil
	})
	c.AddTag("continue", func(string) (func(io.Writer, render.Context) error, error) {
		return func(_ io.Writer, ctx render.Context) error { return ctx.WrapError(errContinue) }, nil
	})
	// The parser skips a comment's body and keeps a raw one as it is.
	c.AddBlock("comment")
	c.AddBlock("raw")
	c.AddBlock("capture").Compiler(captureTag)
	c.AddBlock("case").Clause("when").Clause("else").Compiler(caseTag)
	c.AddBlock("if").Clause("else").Clause("elsif").Compiler(ifTag(true))
	c.AddBlock("unless").Clause("else").Compiler(ifTag(false))
	c.AddBlock("for").Clause("else").Compiler(loopTag)
	c.AddBlock("tablerow").Compiler(loopTag)
	return c
}

var (
	errBreak    = errors.New("{% break %} outside a loop")
	errContinue = errors.New("{% continue %} outside a loop")
)

// captureTag records its body in a variable, counting it in the budget.
func captureTag(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	name := node.Args
	return func(_ io.Writer, ctx render.Context) error {
		w := &buildWriter{b: budgetOf(ctx)}
		if err := renderChildren(ctx, w); err != nil {
			return err
		}
		ctx.Set(name, w.buf.String())
		return nil
	}, nil
}

func caseTag(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	expr, err := expressions.Parse(node.Args)
	if err != nil {
		return nil, err
	}
	type when struct {
		exprs []expressions.Expression // nil for else
		body  *render.BlockNode
	}
	var whens []when
	for _, clause := range node.Clauses {
		w := when{body: clause}
		if clause.Name == "when" {
			stmt, err := expressions.ParseStatement(expressions.WhenStatementSelector, clause.Args)
			if err != nil {
				return nil, err
			}
			w.exprs = stmt.When.Exprs
		}
		whens = append(whens, w)
	}
	return func(w io.Writer, ctx render.Context) error {
		value, err := ctx.Evaluate(expr)
		if err != nil {
			return err
		}
		for _, c := range whens {
			match := c.exprs == nil
			for _, e := range c.exprs {
				v, err := ctx.Evaluate(e)
				if err != nil {
					return err
				}
				if values.Equal(value, v) {
					match = true
					break
				}
			}
			if match {
				return ctx.RenderBlock(w, c.body)
			}
		}
		return nil
	}, nil
}

func ifTag(polarity bool) render.BlockCompiler {
	return func(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
		type branch struct {
			test expressions.Expression
			body *render.BlockNode
		}
		expr, err := expressions.Parse(node.Args)
		if err != nil {
			return nil, err
		}
		if !polarity {
			expr = expressions.Not(expr)
		}
		branches := []branch{{expr, &node}}
		for _, c := range node.Clauses {
			test := expressions.Constant(true)
			if c.Name == "elsif" {
				if test, err = expressions.Parse(c.Args); err != nil {
					return nil, err
				}
			}
			branches = append(branches, branch{test, c})
		}
		return func(w io.Writer, ctx render.Context) error {
			for _, b := range branches {
				v, err := ctx.Evaluate(b.test)
				if err != nil {
					return err
				}
				if v != nil && v != false {
					return ctx.RenderBlock(w, b.body)
				}
			}
			return nil
		}, nil
	}
}

// renderChildren renders the block's body into w. The library panics when
// the write at the end of a body fails (a limit passed): that becomes the
// error, located at this block.
func renderChildren(ctx render.Context, w io.Writer) (err render.Error) {
	defer func() {
		if p := recover(); p != nil {
			e, ok := p.(error)
			if !ok {
				e = fmt.Errorf("%v", p)
			}
			err = ctx.WrapError(e)
		}
	}()
	return ctx.RenderChildren(w)
}

// iterable is what a loop walks: a values.Range, or a list made from the
// loop's value.
type iterable interface {
	Len() int
	Index(int) any
}

// loopTag is {% for %} and {% tablerow %}, each iteration counted in the
// budget (which also checks the deadline). An empty or missing list renders
// the else clause.
func loopTag(node render.BlockNode) (func(io.Writer, render.Context) error, error) {
	stmt, err := expressions.ParseStatement(expressions.LoopStatementSelector, node.Args)
	if err != nil {
		return nil, err
	}
	if len(node.Clauses) > 1 {
		return nil, errors.New("a for loop takes at most one else")
	}
	loop := stmt.Loop
	return func(w io.Writer, ctx render.Context) error {
		b := budgetOf(ctx)
		v, err := ctx.Evaluate(loop.Expr)
		if err != nil {
			return err
		}
		iter, err := loopItems(loop, ctx, v)
		if err != nil {
			return err
		}
		if iter.Len() <= 0 {
			if len(node.Clauses) == 1 && node.Clauses[0].Name == "else" {
				return ctx.RenderBlock(w, node.Clauses[0])
			}
			return nil
		}
		cols := 0
		if node.Name == "tablerow" {
			cols = math.MaxInt32
			if loop.Cols != nil {
				v, err := ctx.Evaluate(loop.Cols)
				if err != nil {
					return err
				}
				n, ok := v.(int)
				if !ok {
					return ctx.Errorf("tablerow cols must be an integer")
				}
				if n > 0 {
					cols = n
				}
			}
		}
		defer func(forloop, variable any) {
			ctx.Set("forloop", forloop)
			ctx.Set(loop.Variable, variable)
		}(ctx.Get("forloop"), ctx.Get(loop.Variable))
		cycles := map[string]int{} // read by the library's {% cycle %}
		for i, l := 0, iter.Len(); i < l; i++ {
			if err := b.iterate(); err != nil {
				return err
			}
			ctx.Set(loop.Variable, iter.Index(i))
			ctx.Set("forloop", map[string]any{
				"first": i == 0, "last": i == l-1, "index": i + 1, "index0": i,
				"rindex": l - i, "rindex0": l - i - 1, "length": l, ".cycles": cycles,
			})
			if cols > 0 {
				if i%cols == 0 {
					if _, err := fmt.Fprintf(w, `<tr class="row%d">`, i/cols+1); err != nil {
						return err
					}
				}
				if _, err := fmt.Fprintf(w, `<td class="col%d">`, i%cols+1); err != nil {
					return err
				}
			}
			err := renderChildren(ctx, w)
			if cols > 0 {
				end := "</td>"
				if (i+1)%cols == 0 || i+1 == l {
					end += "</tr>"
				}
				if _, err := io.WriteString(w, end); err != nil {
					return err
				}
			}
			switch {
			case err == nil:
			case errors.Is(err.Cause(), errBreak):
				return nil
			case errors.Is(err.Cause(), errContinue):
			default:
				return err
			}
		}
		return nil
	}, nil
}

// loopItems returns what a loop walks, modifiers applied (reversed, then
// offset, then limit, as the library does). A map yields [key, value]
// pairs in key order.
func loopItems(loop expressions.Loop, ctx render.Context, v any) (iterable, error) {
	var iter iterable = list(nil)
	switch x := v.(type) {
	case nil:
	case iterable:
		iter = x
	case tags.IterationKeyedMap:
		keys := make(list, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].(string) < keys[j].(string) })
		iter = keys
	default:
		switch rv := reflect.ValueOf(v); rv.Kind() {
		case reflect.Slice, reflect.Array:
			iter = reflectList{rv}
		case reflect.Map:
			pairs := make(list, 0, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				pairs = append(pairs, []any{it.Key().Interface(), it.Value().Interface()})
			}
			sort.Slice(pairs, func(i, j int) bool {
				return fmt.Sprint(pairs[i].([]any)[0]) < fmt.Sprint(pairs[j].([]any)[0])
			})
			iter = pairs
		}
	}
	if loop.Reversed {
		iter = reversed{iter}
	}
	for _, m := range []struct {
		name string
		expr expressions.Expression
		wrap func(iterable, int) iterable
	}{
		{"offset", loop.Offset, func(it iterable, n int) iterable { return offset{it, n} }},
		{"limit", loop.Limit, func(it iterable, n int) iterable { return limited{it, n} }},
	} {
		if m.expr == nil {
			continue
		}
		v, err := ctx.Evaluate(m.expr)
		if err != nil {
			return nil, err
		}
		n, ok := v.(int)
		if !ok {
			return nil, ctx.Errorf("loop %s must be an integer", m.name)
		}
		if n >= 0 && (n > 0 || m.name == "limit") {
			iter = m.wrap(iter, n)
		}
	}
	return iter, nil
}

type list []any

func (l list) Len() int        { return len(l) }
func (l list) Index(i int) any { return l[i] }

type reflectList struct{ v reflect.Value }

func (l reflectList) Len() int        { return l.v.Len() }
func (l reflectList) Index(i int) any { return l.v.Index(i).Interface() }

type reversed struct{ it iterable }

func (r reversed) Len() int        { return r.it.Len() }
func (r reversed) Index(i int) any { return r.it.Index(r.it.Len() - 1 - i) }

type offset struct {
	it iterable
	n  int
}

func (o offset) Len() int        { return max(0, o.it.Len()-o.n) }
func (o offset) Index(i int) any { return o.it.Index(i + o.n) }

type limited struct {
	it iterable
	n  int
}

func (l limited) Len() int        { return min(l.n, l.it.Len()) }
func (l limited) Index(i int) any { return l.it.Index(i) }
