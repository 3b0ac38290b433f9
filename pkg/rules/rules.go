// Package rules holds what every expr-lang rule in Parcours shares
// (validation rules on records, segment rules on profiles, and later journey
// conditions): the compile options that make rules deterministic and
// bounded, and compile errors located by line and column in words a
// marketer understands.
package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"
)

// MaxLength caps a rule's source text.
const MaxLength = 4000

// maxNodes caps a rule's size once parsed, so that no rule is costly to run.
const maxNodes = 500

// MaxRange caps the numbers a range written with literal bounds (1..10)
// may hold. Evaluation builds the whole range, and expr's memory budget
// (a million elements) would fail a bigger one at every evaluation: a rule
// that can never run is refused when it is saved instead.
const MaxRange = 10000

// Error locates what is wrong in a rule, for an editor to point at.
type Error struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// Compile compiles a boolean rule against env (a typed struct). Only the
// built-ins in Loops and Functions are available (the clock's are not: a
// rule gives the same answer for the same input, today, on replay, and
// inside workflow code), let is refused, and the text a rule builds while
// it runs is bounded by MaxText per evaluation. vocabulary lists the names
// a rule may use, for error messages.
//
// It goes through expr's stages itself (parse and check, then its own
// checks and rewrites on the checked tree, then optimize and compile), as
// expr.Compile would: the refusals need the rule as written, with types,
// and the text budget is added before the program is built.
func Compile(src string, env any, vocabulary string, extra ...expr.Option) (*vm.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Line: 1, Column: 1, Message: "the rule is empty; write a condition, e.g. " + exampleFor(vocabulary)}
	}
	if len(src) > MaxLength {
		return nil, &Error{Line: 1, Column: 1, Message: fmt.Sprintf("the rule is %d characters long; the limit is %d", len(src), MaxLength)}
	}
	opts := append([]expr.Option{
		expr.Env(env),
		expr.AsBool(),
		expr.MaxNodes(maxNodes),
	}, builtinOptions()...)
	config := conf.CreateNew()
	for _, op := range append(opts, extra...) {
		op(config)
	}
	for name := range config.Disabled {
		delete(config.Builtins, name)
	}
	config.Check()
	tree, err := checker.ParseCheck(src, config)
	if err != nil {
		return nil, compileError(err, vocabulary)
	}
	// Untyped values (properties, traits) let `properties.total * 2` pass the
	// type check; a rule whose top is arithmetic or a non-boolean literal can
	// never be a condition.
	switch n := tree.Node.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "+", "-", "*", "/", "%", "**", "^", "??":
			line, col := Position(src, n.Location().From)
			return nil, &Error{Line: line, Column: col, Message: "the rule must be a condition (true or false), e.g. " + exampleFor(vocabulary) + "; this one computes a value with " + n.Operator}
		}
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.NilNode, *ast.ArrayNode, *ast.MapNode:
		return nil, &Error{Line: 1, Column: 1, Message: "the rule must be a condition (true or false), e.g. " + exampleFor(vocabulary)}
	}
	if err := checkAllowed(src, tree.Node); err != nil {
		return nil, err
	}
	// The budgeted functions are declared only now, so that a rule cannot
	// call them itself.
	for _, op := range textOptions() {
		op(config)
	}
	if patchText(&tree.Node) {
		if _, err := checker.Check(tree, config); err != nil {
			return nil, fmt.Errorf("check rule with its text budget: %w", err)
		}
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, compileError(fe.Bind(tree.Source), vocabulary)
			}
			return nil, compileError(err, vocabulary)
		}
	}
	// Ranges and loops are checked once optimized: `order_count in 1..1e9`
	// is then a comparison, not a range.
	if err := checkRanges(src, tree.Node); err != nil {
		return nil, err
	}
	if err := checkLoops(src, tree.Node); err != nil {
		return nil, err
	}
	prog, err := compiler.Compile(tree, config)
	if err != nil {
		return nil, compileError(err, vocabulary)
	}
	return prog, nil
}

// compileError locates an error of expr's, in a marketer's words.
func compileError(err error, vocabulary string) *Error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &Error{Line: max(fe.Line, 1), Column: fe.Column + 1, Message: humanize(fe.Message, vocabulary)}
	}
	return &Error{Line: 1, Column: 1, Message: humanize(err.Error(), vocabulary)}
}

// scanningFunctions are the segment functions that go through the
// profile's events: called inside a loop, each item would scan them all
// again (and they give the same answer for every item).
var scanningFunctions = []string{"count", "sum", "performed", "last", "opened", "clicked"}

// checkLoops keeps evaluation linear in the size of the data: expr's memory
// budget stops big ranges and results, but not a loop nested in another
// over independent lists (tags × tags is quadratic). Inside a loop, a loop
// may only go through the current item's own list (#.items), and neither
// the event functions nor `in` over a list of the profile may be used.
func checkLoops(src string, root ast.Node) error {
	// Every node inside a loop's predicate, nested loops' included.
	inLoop := map[ast.Node]bool{}
	ast.Walk(&root, visitFunc(func(n ast.Node) {
		if p, ok := n.(*ast.PredicateNode); ok {
			ast.Walk(&p.Node, visitFunc(func(c ast.Node) { inLoop[c] = true }))
		}
	}))
	var err error
	ast.Walk(&root, visitFunc(func(n ast.Node) {
		if err != nil || !inLoop[n] {
			return
		}
		switch x := n.(type) {
		case *ast.BuiltinNode:
			if isLoop(x) && len(x.Arguments) > 0 && !fromCurrentItem(x.Arguments[0]) {
				err = ErrorAt(src, x, x.Name+" inside another loop may only go through the current item's own list, e.g. any(#.items, {...}): "+
					"going through a whole list for every item takes too long on large profiles")
			}
		case *ast.CallNode:
			if id, ok := x.Callee.(*ast.IdentifierNode); ok && slices.Contains(scanningFunctions, id.Value) {
				err = ErrorAt(src, x, id.Value+" gives the same answer for every item of a loop: use it outside the loop")
			}
		case *ast.BinaryNode:
			if x.Operator == "in" && !fromCurrentItem(x.Right) && !constantList(x.Right) {
				err = ErrorAt(src, x, "`in` a list of the profile inside a loop goes through the whole list for every item: "+
					"write the values, e.g. # in [\"a\", \"b\"], or test the list once outside the loop")
			}
		}
	}))
	return err
}

func isLoop(b *ast.BuiltinNode) bool {
	for _, a := range b.Arguments {
		if _, ok := a.(*ast.PredicateNode); ok {
			return true
		}
	}
	return false
}

// visitFunc adapts a function to ast.Visitor.
type visitFunc func(ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(*n) }

// fromCurrentItem reports whether n reads the loop's current item (#,
// #.items, #.a.b[0]).
func fromCurrentItem(n ast.Node) bool {
	for {
		switch x := n.(type) {
		case *ast.PointerNode:
			return x.Name == ""
		case *ast.MemberNode:
			n = x.Node
		case *ast.ChainNode:
			n = x.Node
		default:
			return false
		}
	}
}

// constantList reports whether n is a list written in the rule: literal
// values, or a range with literal bounds (MaxRange at most).
func constantList(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.ArrayNode, *ast.ConstantNode, *ast.StringNode, *ast.MapNode:
		return true
	case *ast.BinaryNode:
		_, ok1 := literalInt(x.Left)
		_, ok2 := literalInt(x.Right)
		return x.Operator == ".." && ok1 && ok2
	}
	return false
}

// checkRanges refuses a range with literal bounds that holds more than
// MaxRange numbers (a range computed from data is bounded when it runs).
func checkRanges(src string, root ast.Node) error {
	var err error
	ast.Walk(&root, visitFunc(func(n ast.Node) {
		b, ok := n.(*ast.BinaryNode)
		if !ok || b.Operator != ".." || err != nil {
			return
		}
		from, ok1 := literalInt(b.Left)
		to, ok2 := literalInt(b.Right)
		if !ok1 || !ok2 {
			return
		}
		// Compared as floats: to-from of two int64 literals can overflow.
		if size := float64(to) - float64(from) + 1; size > MaxRange {
			err = ErrorAt(src, b, fmt.Sprintf("the range %d..%d holds %.0f numbers; the limit is %d: compare instead, e.g. x >= %d && x <= %d",
				from, to, size, MaxRange, from, to))
		}
	}))
	return err
}

// literalInt reads an integer literal, negative ones included.
func literalInt(n ast.Node) (int, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.UnaryNode:
		if v, ok := literalInt(x.Node); ok && x.Operator == "-" {
			return -v, true
		}
	}
	return 0, false
}

// ErrorAt builds an Error at a node of src.
func ErrorAt(src string, n ast.Node, msg string) *Error {
	line, col := Position(src, n.Location().From)
	return &Error{Line: line, Column: col, Message: msg}
}

func exampleFor(vocabulary string) string {
	if strings.Contains(vocabulary, "profile") {
		return `count("Order Completed", "30d") >= 2`
	}
	return "properties.total > 0"
}

// humanize rewords expr's most common messages.
func humanize(msg, vocabulary string) string {
	switch {
	case strings.Contains(msg, "expected bool"):
		return "the rule must be a condition (true or false); " + msg
	case strings.HasPrefix(msg, "unknown name "):
		if name := strings.TrimPrefix(msg, "unknown name "); isExprBuiltin(name) {
			return unavailable(name)
		}
		return msg + " (a rule can use " + vocabulary + ")"
	case strings.Contains(msg, "exceeds maximum allowed nodes"):
		return fmt.Sprintf("the rule is too complex: more than %d names, values and operators; simplify it (a segment can also combine others with in_segment)", maxNodes)
	}
	return msg
}

// Position turns a byte offset of src into a 1-based line and column.
func Position(src string, offset int) (line, col int) {
	line, col = 1, 1
	for i, r := range src {
		if i >= offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
