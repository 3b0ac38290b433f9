package bulkimport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Header is what a file's first row says: its column names (for NDJSON, the
// fields of the first object, nested ones as "a.b") and, for CSV, the
// delimiter the header row uses.
type Header struct {
	Columns   []string
	Delimiter string // "" for NDJSON and for comma-separated files
}

// maxHeaderBytes bounds what ReadHeader reads of a file: one row.
const maxHeaderBytes = maxRowBytes

// ReadHeader reads the column names of a file, for GuessMapping. A file
// without a usable first row is a *MappingError on the field "file".
func ReadHeader(r io.Reader, f Format) (Header, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxHeaderBytes), 64*1024)
	var first []byte
	for len(first) == 0 {
		line, err := br.ReadBytes('\n')
		first = bytes.TrimSpace(bytes.TrimPrefix(line, []byte("\ufeff"))) // the byte-order mark spreadsheets write
		switch {
		case len(first) > 0:
		case errors.Is(err, io.EOF):
			return Header{}, fileError("is empty")
		case err != nil:
			return Header{}, fmt.Errorf("read header: %w", err)
		}
	}
	switch f {
	case CSV:
		return csvHeader(first)
	case NDJSON:
		return ndjsonHeader(first)
	}
	return Header{}, &MappingError{Errors: []FieldError{{Field: "format", Reason: fmt.Sprintf("%q is not csv or ndjson", f)}}}
}

func fileError(reason string) error {
	return &MappingError{Errors: []FieldError{{Field: "file", Reason: reason}}}
}

// csvHeader reads a header row, with the delimiter that splits it into the
// most columns: spreadsheets in many countries export with ";".
func csvHeader(line []byte) (Header, error) {
	counts := map[rune]int{}
	quoted := false
	for _, r := range string(line) {
		if r == '"' {
			quoted = !quoted
		} else if !quoted {
			counts[r]++
		}
	}
	best := ','
	for _, d := range []rune{';', '\t', '|'} {
		if counts[d] > counts[best] {
			best = d
		}
	}
	cr := csv.NewReader(bytes.NewReader(line))
	cr.Comma = best
	cr.FieldsPerRecord = -1
	cols, err := cr.Read()
	if err != nil {
		return Header{}, fileError("the header row is not valid CSV: " + err.Error())
	}
	h := Header{}
	if best != ',' {
		h.Delimiter = string(best)
	}
	for _, c := range cols {
		h.Columns = append(h.Columns, strings.TrimSpace(c))
	}
	return h, nil
}

// ndjsonHeader reads the fields of the first object, one level of nesting
// deep ("address.city"), in a fixed order.
func ndjsonHeader(line []byte) (Header, error) {
	var obj map[string]any
	if err := json.Unmarshal(line, &obj); err != nil {
		return Header{}, fileError("the first line is not a JSON object: " + err.Error())
	}
	var cols []string
	for k, v := range obj {
		if inner, ok := v.(map[string]any); ok {
			for ik, iv := range inner {
				if _, nested := iv.(map[string]any); !nested {
					cols = append(cols, k+"."+ik)
				}
			}
			continue
		}
		cols = append(cols, k)
	}
	sort.Strings(cols)
	return Header{Columns: cols}, nil
}

// nonWord runs are what separates the words of a column name.
var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// snakeName turns a column name into a trait or property name:
// "First name" → first_name, "address.city" → address_city.
func snakeName(col string) string {
	return strings.Trim(nonWord.ReplaceAllString(strings.ToLower(col), "_"), "_")
}

// Spellings of the common identifiers in exports.
var identifierSynonyms = map[string]string{
	"userid": "userId", "user_id": "userId",
	"anonymousid": "anonymousId", "anonymous_id": "anonymousId",
	"e_mail": "email", "email_address": "email", "mail": "email",
	"phone_number": "phone", "mobile": "phone", "mobile_phone": "phone", "telephone": "phone", "tel": "phone",
}

// Columns that say when an event happened, and columns that hold amounts
// (read as numbers, so that rules can add and compare them).
var (
	timestampNames = []string{"timestamp", "occurred_at", "event_time", "ordered_at", "purchased_at", "date", "time"}
	amountNames    = []string{"total", "revenue", "amount", "price", "quantity"}
)

// GuessMapping proposes a mapping for a file from its header, for people who
// do not write one: a column named like an identifier of the workspace
// (email, phone, user_id, an identity trait such as customer_number) is that
// identifier; with event set, each row is that event (without it, a column
// named "event" names each row's event, if any), a column named like a time
// is the row's timestamp, and the other columns are properties; otherwise
// the other columns are traits. A header without an identifier is a
// *MappingError saying which names would be recognised.
func GuessMapping(h Header, identityTraits []string, event string) (*Mapping, error) {
	m := &Mapping{Columns: map[string]Column{}, Delimiter: h.Delimiter}
	event = strings.TrimSpace(event)
	if event != "" {
		m.Event = &Event{Name: event}
	} else if i := slices.IndexFunc(h.Columns, func(c string) bool { return snakeName(c) == "event" }); i >= 0 {
		m.Event = &Event{NameColumn: h.Columns[i]}
	}
	used := map[string]bool{} // identifiers, traits and properties filled
	for _, col := range h.Columns {
		name := snakeName(strings.TrimPrefix(strings.TrimPrefix(col, "traits."), "properties."))
		if name == "" || (m.Event != nil && col == m.Event.NameColumn) {
			continue
		}
		if _, dup := m.Columns[col]; dup {
			continue // a repeated column: NewReader says so
		}
		id := identifierSynonyms[name]
		if id == "" && slices.Contains(identityTraits, name) {
			id = name
		}
		if id != "" && (id == "userId" || id == "anonymousId" || slices.Contains(identityTraits, id)) && !used[id] {
			used[id] = true
			m.Columns[col] = Column{Identifier: id}
			continue
		}
		if m.Event != nil && m.TimestampColumn == "" && slices.Contains(timestampNames, name) {
			m.TimestampColumn = col
			continue
		}
		if used[name] {
			continue
		}
		used[name] = true
		c := Column{Trait: name}
		if m.Event != nil {
			c = Column{Property: name}
			if slices.Contains(amountNames, name) {
				c.Type = TypeNumber
			}
		}
		m.Columns[col] = c
	}
	if !slices.ContainsFunc(h.Columns, func(c string) bool { return m.Columns[c].Identifier != "" }) {
		known := append([]string{"user_id"}, identityTraits...)
		return nil, &MappingError{Errors: []FieldError{{Field: "mapping", Reason: fmt.Sprintf(
			"no column of the file (%s) says who each row is: name one of them %s, or write the mapping",
			headerList(h.Columns), strings.Join(known, ", "))}}}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
