package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
)

// Loops are the built-in loops a rule may use: each goes through a list
// once and keeps at most its items.
var Loops = []string{"all", "any", "none", "one", "filter", "map", "count", "sum", "find", "findIndex", "findLast", "findLastIndex"}

// Functions are the other built-in functions a rule may call: they read,
// compare or convert a value, and the few that build text (upper, lower,
// string) count against MaxText.
var Functions = []string{
	"len", "abs", "ceil", "floor", "round", "int", "float", "string",
	"trim", "trimPrefix", "trimSuffix", "upper", "lower", "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix",
	"max", "min", "first", "last", "get",
}

// clockBuiltins read the clock: a rule gives the same answer for the same
// data at the same time, on replay too.
var clockBuiltins = []string{"now", "date", "duration", "timezone"}

// builtinOptions disables every expr built-in but the allow-listed ones.
// The loops are parsed whatever the options say (expr treats them as
// syntax), so checkAllowed refuses the others on the parsed rule.
func builtinOptions() []expr.Option {
	opts := []expr.Option{expr.DisableAllBuiltins()}
	for _, name := range Functions {
		opts = append(opts, expr.EnableBuiltin(name))
	}
	for _, name := range Loops {
		opts = append(opts, expr.EnableBuiltin(name))
	}
	return opts
}

// allowed reports whether a built-in may be used in a rule.
func allowed(name string) bool {
	return slices.Contains(Loops, name) || slices.Contains(Functions, name)
}

// unavailable explains why a built-in of expr is not available in rules.
func unavailable(name string) string {
	if slices.Contains(clockBuiltins, name) {
		return name + " reads the clock, and a rule must give the same answer for the same data at the same time (on replay too): " +
			"compare with a window instead, e.g. count(\"Order Completed\", \"30d\") or days_since(profile.last_order_at) > 30"
	}
	return name + " is not available in rules (it can build values without bound); a rule can use the loops " +
		strings.Join(Loops, ", ") + " and the functions " + strings.Join(Functions, ", ")
}

// isExprBuiltin reports whether name is one of expr's built-ins.
func isExprBuiltin(name string) bool {
	_, ok := builtin.Index[name]
	return ok
}

// checkAllowed refuses, on the rule as written, what could build values
// or loop without bound once it runs: built-ins outside the allow-list,
// let (a variable doubles a text at every use), ranges whose bounds come
// from the data, and patterns that come from the data (compiled again at
// every evaluation). The leftmost offence is reported.
func checkAllowed(src string, root ast.Node) error {
	var found *Error
	offset := -1
	refuse := func(at int, msg string) {
		if found == nil || at < offset {
			line, col := Position(src, at)
			found, offset = &Error{Line: line, Column: col, Message: msg}, at
		}
	}
	ast.Walk(&root, visitFunc(func(n ast.Node) {
		from := n.Location().From
		switch x := n.(type) {
		case *ast.BuiltinNode:
			if !allowed(x.Name) {
				refuse(from, unavailable(x.Name))
			}
		case *ast.VariableDeclaratorNode:
			// The node sits at the variable's name: point at `let`.
			if i := strings.LastIndex(src[:min(from, len(src))], "let"); i >= 0 {
				from = i
			}
			refuse(from, "let is not available in rules: write the value where it is used")
		case *ast.BinaryNode:
			switch x.Operator {
			case "..":
				_, ok1 := literalInt(x.Left)
				_, ok2 := literalInt(x.Right)
				if !ok1 || !ok2 {
					refuse(from, fmt.Sprintf("a range must be written with numbers, e.g. 1..10 (at most %d): "+
						"one computed from the data can be too long to go through; compare instead, e.g. x >= 1 && x <= profile.order_count", MaxRange))
				}
			case "matches":
				if _, ok := x.Right.(*ast.StringNode); !ok {
					refuse(from, `matches needs the pattern in quotes, e.g. profile.traits.email matches "@example\\.com$": `+
						"a pattern taken from the data would be compiled again at every evaluation")
				}
			}
		}
	}))
	if found == nil {
		return nil
	}
	return found
}
