// Package bulkimport turns exports of other systems (a CRM, a shop's till, a
// call centre) into Parcours records: it reads CSV (with a header row) or
// NDJSON row by row and, following a column mapping, makes each row an
// identify record, or a track record when the mapping names an event.
//
// Every row gets a deterministic messageId (from a mapped id column, or from
// the file's content hash, the mapping and the line number), so importing
// the same file twice stores nothing twice: ingestion dedupes by messageId.
// Rows that cannot become records are returned as *RowError with their line
// number and reason, to be kept in quarantine.
//
// Parsing is pure; Store keeps the state of imports in PostgreSQL.
package bulkimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/parcours/parcours/pkg/identity"
)

// Format is the file format of an import.
type Format string

// Formats an import may have.
const (
	CSV    Format = "csv"
	NDJSON Format = "ndjson"
)

// ParseFormat reads a format name: csv, ndjson (or its synonym jsonl).
func ParseFormat(s string) (Format, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "csv":
		return CSV, true
	case "ndjson", "jsonl":
		return NDJSON, true
	}
	return "", false
}

// FormatFromName infers the format from a file name's extension (.csv,
// .ndjson, .jsonl); ok is false when the name says nothing.
func FormatFromName(name string) (Format, bool) {
	name = strings.ToLower(name)
	for _, ext := range []string{".gz", ".txt"} { // export.csv.txt, as some tools name them
		name = strings.TrimSuffix(name, ext)
	}
	switch {
	case strings.HasSuffix(name, ".csv"):
		return CSV, true
	case strings.HasSuffix(name, ".ndjson"), strings.HasSuffix(name, ".jsonl"):
		return NDJSON, true
	}
	return "", false
}

// Value types a column may be converted to.
const (
	TypeString  = "string"
	TypeNumber  = "number"
	TypeInteger = "integer"
	TypeBoolean = "boolean"
	TypeTime    = "time"
)

// Mapping says how the columns of a file (the fields of an NDJSON object)
// become a record. It is a JSON document, for example:
//
//	{"columns": {
//	   "Email":       {"identifier": "email"},
//	   "Customer No": {"identifier": "customer_number"},
//	   "First name":  {"trait": "first_name"},
//	   "Total":       {"property": "total", "type": "number"}},
//	 "event": {"name": "Order Completed"},
//	 "id_column": "Order ID",
//	 "timestamp_column": "Ordered at"}
type Mapping struct {
	// Columns maps a column name (an NDJSON field name; "a.b" reaches a
	// nested field) to what it fills. At least one column is an identifier.
	Columns map[string]Column `json:"columns"`
	// Event, when set, makes every row a track record of that event;
	// without it every row is an identify record.
	Event *Event `json:"event,omitempty"`
	// IDColumn names a column holding a stable id of the row (an order
	// number, a CRM contact id). Rows with the same id are the same record,
	// whichever file they come in. Default: none; the row's identity is its
	// file's content, the mapping and its line number.
	IDColumn string `json:"id_column,omitempty"`
	// TimestampColumn names the column saying when the row happened.
	// Default: none, the time of the upload.
	TimestampColumn string `json:"timestamp_column,omitempty"`
	// TimeLayout is the Go layout of every time value (e.g.
	// "02/01/2006 15:04"). Default: ISO 8601 (2026-11-29T08:30:00Z,
	// 2026-11-29 08:30:00, 2026-11-29), UTC when no zone is given.
	TimeLayout string `json:"time_layout,omitempty"`
	// Delimiter separates CSV fields. Default ",".
	Delimiter string `json:"delimiter,omitempty"`
}

// Column is what one column fills. A column may fill a trait and a property
// at once.
type Column struct {
	// Identifier is userId, anonymousId, or an identity trait of the
	// workspace (email, phone, customer_number, ...), which also fills the
	// trait of that name.
	Identifier string `json:"identifier,omitempty"`
	// Trait is the profile trait the column fills.
	Trait string `json:"trait,omitempty"`
	// Property is the event property the column fills (track rows only).
	Property string `json:"property,omitempty"`
	// Type converts the value: string, number, integer, boolean or time.
	// Default: CSV values stay text, NDJSON values stay as they are.
	Type string `json:"type,omitempty"`
}

// Event makes rows track records.
type Event struct {
	// Name is the event of every row, e.g. "Order Completed".
	Name string `json:"name,omitempty"`
	// NameColumn names the column holding each row's event name instead.
	NameColumn string `json:"name_column,omitempty"`
}

// FieldError names what is wrong: a field of the mapping
// ("columns.Email.type", "event.name"), or "file".
type FieldError struct {
	Field  string
	Reason string
}

// MappingError lists everything wrong with a mapping, or with a mapping
// against a file's header.
type MappingError struct {
	Errors []FieldError
}

func (e *MappingError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid mapping: " + strings.Join(parts, "; ")
}

// traitNameRe is what an identity trait may be called (as in workspace settings).
var traitNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// maxNameLen bounds trait, property and event names.
const maxNameLen = 200

// MaxMappingBytes bounds a mapping document.
const MaxMappingBytes = 64 * 1024

// ParseMapping reads and validates a mapping document. Errors in the
// document are a *MappingError naming each field at fault.
func ParseMapping(doc []byte) (*Mapping, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, &MappingError{Errors: []FieldError{{Field: "mapping", Reason: "is empty: send a JSON object with columns"}}}
	}
	if len(doc) > MaxMappingBytes {
		return nil, &MappingError{Errors: []FieldError{{Field: "mapping", Reason: fmt.Sprintf("is larger than %d KB", MaxMappingBytes/1024)}}}
	}
	var m Mapping
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, &MappingError{Errors: []FieldError{jsonFieldError(err)}}
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, &MappingError{Errors: []FieldError{{Field: "mapping", Reason: "has something after the JSON object"}}}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func jsonFieldError(err error) FieldError {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "mapping"
		}
		return FieldError{Field: field, Reason: fmt.Sprintf("has the wrong type: %s where a %s is expected", typeErr.Value, typeErr.Type)}
	case errors.As(err, &syntaxErr):
		return FieldError{Field: "mapping", Reason: fmt.Sprintf("is not valid JSON (at byte %d): %v", syntaxErr.Offset, syntaxErr)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Field: "mapping", Reason: "is not valid JSON: it ends before the JSON object is complete"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return FieldError{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Reason: "unknown field (check its spelling)"}
	}
	return FieldError{Field: "mapping", Reason: "is not a valid JSON object: " + err.Error()}
}

// Validate checks the mapping on its own (the file's header is checked by
// NewReader). The error is a *MappingError.
func (m *Mapping) Validate() error {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if len(m.Columns) == 0 {
		bad("columns", "is empty: map at least one column to an identifier, e.g. {\"Email\": {\"identifier\": \"email\"}}")
	}
	traits, props := map[string]string{}, map[string]string{}
	identifiers := 0
	for _, name := range m.columnNames() {
		c := m.Columns[name]
		field := "columns." + name
		if strings.TrimSpace(name) == "" {
			bad("columns", "has a column with an empty name")
			continue
		}
		if c.Identifier == "" && c.Trait == "" && c.Property == "" {
			bad(field, "fills nothing: give it an identifier, a trait or a property")
		}
		if c.Identifier != "" {
			typ, ok := identifierType(c.Identifier)
			switch {
			case !ok:
				bad(field+".identifier", "%q is not an identifier: use userId, anonymousId, or an identity trait such as email, phone or customer_number", c.Identifier)
			case typ != identity.UserID && typ != identity.AnonymousID && c.Trait != "" && c.Trait != typ:
				bad(field+".trait", "an identifier fills the trait of its own name (%s); map another column to fill %s", typ, c.Trait)
			default:
				identifiers++
				if typ != identity.UserID && typ != identity.AnonymousID {
					if prev, dup := traits[typ]; dup {
						bad(field+".identifier", "%s is already filled by column %q", typ, prev)
					}
					traits[typ] = name
				}
			}
		}
		if c.Trait != "" {
			if err := checkName(c.Trait); err != "" {
				bad(field+".trait", "%s", err)
			} else if prev, dup := traits[c.Trait]; dup && prev != name {
				bad(field+".trait", "trait %s is already filled by column %q", c.Trait, prev)
			} else {
				traits[c.Trait] = name
			}
		}
		if c.Property != "" {
			if err := checkName(c.Property); err != "" {
				bad(field+".property", "%s", err)
			} else if m.Event == nil {
				bad(field+".property", "properties belong to events: set event.name (or event.name_column) to import track records")
			} else if prev, dup := props[c.Property]; dup {
				bad(field+".property", "property %s is already filled by column %q", c.Property, prev)
			} else {
				props[c.Property] = name
			}
		}
		switch c.Type {
		case "", TypeString, TypeNumber, TypeInteger, TypeBoolean, TypeTime:
		default:
			bad(field+".type", "%q is not one of string, number, integer, boolean, time", c.Type)
		}
	}
	if len(m.Columns) > 0 && identifiers == 0 {
		bad("columns", "no column is an identifier: map at least one to userId, anonymousId or an identity trait such as email")
	}
	if e := m.Event; e != nil {
		switch {
		case e.Name == "" && e.NameColumn == "":
			bad("event", "needs a name (the same event for every row) or a name_column")
		case e.Name != "" && e.NameColumn != "":
			bad("event", "give name or name_column, not both")
		case e.Name != "" && (strings.TrimSpace(e.Name) == "" || len(e.Name) > maxNameLen):
			bad("event.name", "must be 1 to %d characters, e.g. \"Order Completed\"", maxNameLen)
		case e.NameColumn != "" && strings.TrimSpace(e.NameColumn) == "":
			bad("event.name_column", "is blank")
		}
	}
	if m.IDColumn != "" && strings.TrimSpace(m.IDColumn) == "" {
		bad("id_column", "is blank")
	}
	if m.TimestampColumn != "" && strings.TrimSpace(m.TimestampColumn) == "" {
		bad("timestamp_column", "is blank")
	}
	if m.TimeLayout != "" && !strings.Contains(m.TimeLayout, "06") {
		bad("time_layout", "%q is not a Go time layout with a year, such as \"02/01/2006 15:04\"", m.TimeLayout)
	}
	if m.Delimiter != "" {
		r, size := utf8.DecodeRuneInString(m.Delimiter)
		if size != len(m.Delimiter) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
			bad("delimiter", "must be one character other than a quote or a line break, such as \";\" or \"\\t\"")
		}
	}
	if len(errs) > 0 {
		return &MappingError{Errors: errs}
	}
	return nil
}

func checkName(name string) string {
	if strings.TrimSpace(name) == "" || len(name) > maxNameLen {
		return fmt.Sprintf("must be 1 to %d characters", maxNameLen)
	}
	return ""
}

// identifierType returns the identity type an identifier spelling stands for.
func identifierType(s string) (string, bool) {
	switch s {
	case "userId", "user_id":
		return identity.UserID, true
	case "anonymousId", "anonymous_id":
		return identity.AnonymousID, true
	}
	return s, traitNameRe.MatchString(s)
}

// IdentifierTraits returns the identity traits the mapping uses as
// identifiers (email, customer_number, ...; not userId or anonymousId), each
// with its column, so that a caller can check them against the workspace's
// identity traits.
func (m *Mapping) IdentifierTraits() map[string]string {
	out := map[string]string{}
	for _, name := range m.columnNames() {
		if typ, ok := identifierType(m.Columns[name].Identifier); ok && m.Columns[name].Identifier != "" && typ != identity.UserID && typ != identity.AnonymousID {
			out[typ] = name
		}
	}
	return out
}

// columnNames returns the mapped columns in a fixed order.
func (m *Mapping) columnNames() []string {
	names := make([]string, 0, len(m.Columns))
	for n := range m.Columns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// columnRef is a column the mapping reads and the mapping field naming it.
type columnRef struct {
	field, column string
}

// referenced returns every column the mapping reads, once, in a fixed order.
func (m *Mapping) referenced() []columnRef {
	var out []columnRef
	for _, n := range m.columnNames() {
		out = append(out, columnRef{field: "columns." + n, column: n})
	}
	extra := []columnRef{{"id_column", m.IDColumn}, {"timestamp_column", m.TimestampColumn}}
	if m.Event != nil {
		extra = append(extra, columnRef{"event.name_column", m.Event.NameColumn})
	}
	for _, e := range extra {
		if e.column != "" && !slices.ContainsFunc(out, func(r columnRef) bool { return r.column == e.column }) {
			out = append(out, e)
		}
	}
	return out
}
