// Package rules holds what every expr-lang rule in Parcours shares
// (validation rules on records, segment rules on profiles, and later journey
// conditions): the compile options that make rules deterministic and
// bounded, and compile errors located by line and column in words a
// marketer understands.
package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// MaxLength caps a rule's source text.
const MaxLength = 4000

// maxNodes caps a rule's size once parsed, so that no rule is costly to run.
const maxNodes = 500

// Error locates what is wrong in a rule, for an editor to point at.
type Error struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// Compile compiles a boolean rule against env (a typed struct). Built-ins
// that read the clock are refused: a rule gives the same answer for the same
// input, today, on replay, and inside workflow code. vocabulary lists the
// names a rule may use, for error messages.
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
		expr.DisableBuiltin("now"),
		expr.DisableBuiltin("date"),
		expr.DisableBuiltin("duration"),
	}, extra...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &Error{Line: max(fe.Line, 1), Column: fe.Column + 1, Message: humanize(fe.Message, vocabulary)}
		}
		return nil, &Error{Line: 1, Column: 1, Message: humanize(err.Error(), vocabulary)}
	}
	// Untyped values (properties, traits) let `properties.total * 2` pass the
	// type check; a rule whose top is arithmetic or a non-boolean literal can
	// never be a condition.
	switch n := prog.Node().(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "+", "-", "*", "/", "%", "**", "^", "??":
			line, col := Position(src, n.Location().From)
			return nil, &Error{Line: line, Column: col, Message: "the rule must be a condition (true or false), e.g. " + exampleFor(vocabulary) + "; this one computes a value with " + n.Operator}
		}
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.NilNode, *ast.ArrayNode, *ast.MapNode:
		return nil, &Error{Line: 1, Column: 1, Message: "the rule must be a condition (true or false), e.g. " + exampleFor(vocabulary)}
	}
	return prog, nil
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
	case strings.HasPrefix(msg, "unknown name"):
		return msg + " (a rule can use " + vocabulary + ")"
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
