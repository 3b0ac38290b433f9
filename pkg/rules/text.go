package rules

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// MaxText caps the bytes of text one evaluation of a rule may build (+ on
// texts, upper, lower, string). expr's own memory budget counts list
// items, not bytes, so without it a few hundred characters of `+` could
// build megabytes from one large trait, and a loop gigabytes.
const MaxText = 1 << 20

// Names of the functions and variable the text budget adds to a rule; a
// rule cannot name them (they are declared only once it has been checked).
const (
	textVar       = "_text"
	textBudgetFn  = "_text_budget"
	textAddFn     = "_text_add"
	textAddTextFn = "_text_add_text"
	textUpperFn   = "_text_upper"
	textLowerFn   = "_text_lower"
	textStringFn  = "_text_string"
)

// textBudget is what is left of MaxText in one evaluation.
type textBudget struct{ left int }

// errTextBudget stops an evaluation that builds too much text.
var errTextBudget = fmt.Errorf("the rule builds more than %d KiB of text in one evaluation (+ on texts, upper, lower and string count): "+
	"compare the values instead of building new ones", MaxText>>10)

func (b *textBudget) spend(n int) error {
	if n > b.left {
		b.left = 0
		return errTextBudget
	}
	b.left -= n
	return nil
}

// textOptions declares the budgeted functions that patchText calls.
func textOptions() []expr.Option {
	return []expr.Option{
		expr.Function(textBudgetFn, func(...any) (any, error) { return &textBudget{left: MaxText}, nil },
			new(func() *textBudget)),
		expr.Function(textAddFn, textAdd, new(func(*textBudget, any, any) any)),
		expr.Function(textAddTextFn, textAdd, new(func(*textBudget, string, string) string)),
		expr.Function(textUpperFn, textCase(strings.ToUpper, "upper"), new(func(*textBudget, string) string)),
		expr.Function(textLowerFn, textCase(strings.ToLower, "lower"), new(func(*textBudget, string) string)),
		expr.Function(textStringFn, textString, new(func(*textBudget, any) string)),
	}
}

// textAdd is + for operands that may be texts: texts are joined within the
// budget, anything else is added as expr adds it.
func textAdd(p ...any) (any, error) {
	b := p[0].(*textBudget)
	x, y := deref(p[1]), deref(p[2])
	if xs, ok := x.(string); ok {
		if ys, ok := y.(string); ok {
			if err := b.spend(len(xs) + len(ys)); err != nil {
				return nil, err
			}
			return xs + ys, nil
		}
	}
	return runtime.Add(x, y), nil
}

// textCase is upper or lower within the budget.
func textCase(f func(string) string, name string) func(...any) (any, error) {
	return func(p ...any) (any, error) {
		b := p[0].(*textBudget)
		s, ok := deref(p[1]).(string)
		if !ok {
			return nil, fmt.Errorf("%s needs a text, not %T", name, p[1])
		}
		if err := b.spend(len(s)); err != nil {
			return nil, err
		}
		out := f(s)
		if len(out) > len(s) { // a few runes grow when their case changes
			if err := b.spend(len(out) - len(s)); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

// textString is string() within the budget. The size of a value's text is
// known only once it is written, so one call may go past the budget by the
// size of a value the rule reads (the data's size, not the rule's doing).
func textString(p ...any) (any, error) {
	b := p[0].(*textBudget)
	if b.left == 0 {
		return nil, errTextBudget
	}
	out := builtin.String(p[1]).(string)
	if err := b.spend(len(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// deref follows pointers, as expr does before adding.
func deref(v any) any {
	for {
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Pointer || rv.IsNil() {
			return v
		}
		v = rv.Elem().Interface()
	}
}

// patchText rewrites, on a checked rule, what builds text into calls of
// the budgeted functions, and declares the evaluation's budget around the
// rule (let _text = _text_budget(); rule): a variable lives for one
// evaluation, so concurrent evaluations of a program never share it.
// Rules that build no text are left as they are, and run as fast as
// before. It reports whether it changed anything.
func patchText(root *ast.Node) bool {
	p := &textPatcher{texts: map[ast.Node]bool{}}
	ast.Walk(root, p)
	if !p.patched {
		return false
	}
	rule := *root
	*root = &ast.VariableDeclaratorNode{
		Name:  textVar,
		Value: &ast.CallNode{Callee: &ast.IdentifierNode{Value: textBudgetFn}},
		Expr:  rule,
	}
	(*root).SetLocation(rule.Location())
	return true
}

type textPatcher struct {
	patched bool
	// texts are the calls that answer a text: their type is set only when
	// the rule is checked again, and an enclosing + needs it before.
	texts map[ast.Node]bool
}

func (p *textPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator != "+" || !textLike(n.Left) || !textLike(n.Right) {
			return
		}
		_, l := n.Left.(*ast.StringNode)
		_, r := n.Right.(*ast.StringNode)
		if l && r {
			return // folded when compiled, within the rule's length
		}
		fn := textAddFn
		if p.isString(n.Left) && p.isString(n.Right) {
			fn = textAddTextFn // keeps the type: "a" + x stays a text for the checker
		}
		p.call(node, fn, n.Left, n.Right)
	case *ast.BuiltinNode:
		fn := map[string]string{"upper": textUpperFn, "lower": textLowerFn, "string": textStringFn}[n.Name]
		if fn != "" && len(n.Arguments) == 1 {
			p.call(node, fn, n.Arguments[0])
		}
	}
}

// call replaces node with fn(_text, args...).
func (p *textPatcher) call(node *ast.Node, fn string, args ...ast.Node) {
	loc := (*node).Location()
	budget := &ast.IdentifierNode{Value: textVar}
	budget.SetLocation(loc)
	callee := &ast.IdentifierNode{Value: fn}
	callee.SetLocation(loc)
	call := &ast.CallNode{Callee: callee, Arguments: append([]ast.Node{budget}, args...)}
	ast.Patch(node, call)
	p.patched = true
	if fn != textAddFn {
		p.texts[call] = true
	}
}

// textLike reports whether a checked node may hold a text: a string, or a
// value whose type is known only when the rule runs (a trait, a property).
func textLike(n ast.Node) bool {
	k := n.Type().Kind()
	return k == reflect.String || k == reflect.Interface
}

func (p *textPatcher) isString(n ast.Node) bool {
	return p.texts[n] || n.Type().Kind() == reflect.String
}
