// Package validation runs the rules marketers write, per workspace and
// source, to accept or reject incoming records before they are stored
// (e.g. `event != "Order Completed" || properties.total > 0`).
//
// Rules are expr-lang programs compiled once, at save time, against the
// typed Record environment; they must return a boolean. Evaluation is pure.
package validation

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/parcours/parcours/pkg/events"
)

// MaxRuleLength caps a rule's source text.
const MaxRuleLength = 4000

// maxNodes caps a rule's size once parsed, so that no rule is costly to run.
const maxNodes = 500

// Record is what a rule sees of an incoming record. Field names follow the
// Segment spec, so rules read like the JSON marketers send.
type Record struct {
	Type        string         `expr:"type"`
	Event       string         `expr:"event"`
	Name        string         `expr:"name"`
	UserID      string         `expr:"userId"`
	AnonymousID string         `expr:"anonymousId"`
	Properties  map[string]any `expr:"properties"`
	Traits      map[string]any `expr:"traits"`
	Context     map[string]any `expr:"context"`
	// Source is the named source of the write key (web, store, crm, ...).
	Source string `expr:"source"`
}

// RecordOf builds the environment of a message.
func RecordOf(m *events.Message, source string) Record {
	return Record{
		Type: m.Type, Event: m.Event, Name: m.Name, UserID: m.UserID, AnonymousID: m.AnonymousID,
		Properties: m.Properties, Traits: m.Traits, Context: m.Context, Source: source,
	}
}

// CompileError locates what is wrong in a rule, for the editor to point at.
type CompileError struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// Compile checks a rule and returns its program. Non-deterministic built-ins
// (now, date without a literal) are refused: a rule must give the same answer
// for the same record, today and on replay.
func Compile(rule string) (*vm.Program, error) {
	if strings.TrimSpace(rule) == "" {
		return nil, &CompileError{Line: 1, Column: 1, Message: "the rule is empty; write a condition that is true for records to keep"}
	}
	if len(rule) > MaxRuleLength {
		return nil, &CompileError{Line: 1, Column: 1, Message: fmt.Sprintf("the rule is %d characters long; the limit is %d", len(rule), MaxRuleLength)}
	}
	prog, err := expr.Compile(rule,
		expr.Env(Record{}),
		expr.AsBool(),
		expr.MaxNodes(maxNodes),
		expr.DisableBuiltin("now"),
		expr.DisableBuiltin("date"),
		expr.DisableBuiltin("duration"),
	)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &CompileError{Line: fe.Line, Column: fe.Column + 1, Message: humanize(fe.Message)}
		}
		return nil, &CompileError{Line: 1, Column: 1, Message: err.Error()}
	}
	// Values of properties and traits are untyped, so `properties.total * 2`
	// passes the type check; a rule whose top is arithmetic or a non-boolean
	// literal can never be a condition.
	switch n := prog.Node().(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "+", "-", "*", "/", "%", "**", "^", "??":
			line, col := position(rule, n.Location().From)
			return nil, &CompileError{Line: line, Column: col, Message: "the rule must be a condition (true or false), e.g. properties.total > 0; this one computes a value with " + n.Operator}
		}
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.NilNode, *ast.ArrayNode, *ast.MapNode:
		return nil, &CompileError{Line: 1, Column: 1, Message: "the rule must be a condition (true or false), e.g. properties.total > 0"}
	}
	return prog, nil
}

// humanize rewords expr's most common messages for marketers.
func humanize(msg string) string {
	switch {
	case strings.Contains(msg, "expected bool"):
		return "the rule must be a condition (true or false), e.g. properties.total > 0; " + msg
	case strings.HasPrefix(msg, "unknown name"):
		return msg + " (a rule can use type, event, name, userId, anonymousId, properties, traits, context, source)"
	}
	return msg
}

// Rule is a compiled rule.
type Rule struct {
	ID      string
	Name    string
	Source  string // "" applies to every source
	Text    string
	program *vm.Program
}

// Check runs the rules that apply to source against m and returns the first
// reason to reject it, or "" to accept. A rule that fails to evaluate (say it
// compares a missing property) rejects the record, with the error as reason.
func Check(rules []Rule, m *events.Message, source string) string {
	env := RecordOf(m, source)
	for _, r := range rules {
		if r.Source != "" && r.Source != source {
			continue
		}
		out, err := expr.Run(r.program, env)
		if err != nil {
			return fmt.Sprintf("rule %q could not be evaluated on this record: %v", r.Name, firstLine(err.Error()))
		}
		ok, isBool := out.(bool)
		if !isBool {
			return fmt.Sprintf("rule %q gave %v instead of true or false on this record", r.Name, out)
		}
		if !ok {
			return fmt.Sprintf("rule %q rejected it: %s", r.Name, r.Text)
		}
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// NewRule compiles a rule for Check.
func NewRule(name, source, text string) (Rule, error) {
	prog, err := Compile(text)
	if err != nil {
		return Rule{}, err
	}
	return Rule{Name: name, Source: source, Text: text, program: prog}, nil
}

// position turns a byte offset of src into a 1-based line and column.
func position(src string, offset int) (line, col int) {
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
