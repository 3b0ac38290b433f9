// Package validation runs the rules marketers write, per workspace and
// source, to accept or reject incoming records before they are stored
// (e.g. `event != "Order Completed" || properties.total > 0`).
//
// Rules are expr-lang programs compiled once, at save time, against the
// typed Record environment; they must return a boolean. Evaluation is pure.
package validation

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/rules"
)

// MaxRuleLength caps a rule's source text.
const MaxRuleLength = rules.MaxLength

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

// CompileError locates what is wrong in a rule.
type CompileError = rules.Error

// vocabulary is what a validation rule may use, for error messages.
const vocabulary = "type, event, name, userId, anonymousId, properties, traits, context, source"

// Compile checks a rule and returns its program.
func Compile(rule string) (*vm.Program, error) {
	return rules.Compile(rule, Record{}, vocabulary)
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
