package bulkimport

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parcours/parcours/pkg/events"
	"github.com/parcours/parcours/pkg/identity"
	"github.com/parcours/parcours/pkg/ingest"
)

// Options are what a Reader needs besides the file and the mapping.
type Options struct {
	// Format of the file.
	Format Format
	// FileHash identifies the file's content (e.g. its hex SHA-256). With
	// the mapping and the line number it makes the messageId of rows when
	// no id column is mapped.
	FileHash string
	// Namespace scopes the messageIds made from an id column (the source,
	// e.g. "crm"), so that two systems' order 1001 stay two records.
	Namespace string
	// ImportID is recorded in each record's context.
	ImportID string
	// ReceivedAt is when the file was received: the receive time of every
	// record, and the timestamp of rows without one.
	ReceivedAt time.Time
}

// RowError is a row that cannot become a record: its line, the column at
// fault ("" for the row as a whole), why, and the row as read.
type RowError struct {
	Line   int
	Field  string
	Reason string
	Raw    []byte
}

func (e *RowError) Error() string { return e.Label() + ": " + e.Reason }

// Label is where the problem is, e.g. "line 12: email".
func (e *RowError) Label() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d", e.Line)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Field)
}

// Rejection returns the row as a record for the quarantine.
func (e *RowError) Rejection(receivedAt time.Time) ingest.Rejection {
	return ingest.Rejection{Field: e.Label(), Reason: e.Reason, Raw: e.Raw, ReceivedAt: receivedAt}
}

// maxRowBytes bounds one row, as the HTTP API bounds one record.
const maxRowBytes = events.MaxEventBytes

// Reader reads records from a file, one row at a time.
type Reader struct {
	m          *Mapping
	o          Options
	cols       []string // mapped columns, sorted
	idCols     []string // identifier columns, sorted
	mappingKey []byte   // canonical mapping, part of line-based messageIds
	receivedAt time.Time

	// CSV
	cr     *csv.Reader
	header []string
	index  map[string]int

	// NDJSON
	br   *bufio.Reader
	buf  []byte
	line int
}

// row is one row as read, before conversion.
type row struct {
	line   int
	fields []string       // CSV
	obj    map[string]any // NDJSON
	raw    []byte
}

// NewReader starts reading r. For CSV it reads the header row, and every
// column the mapping names must be in it: a missing column is a
// *MappingError naming the mapping field. Other errors are I/O errors.
func NewReader(r io.Reader, m *Mapping, o Options) (*Reader, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	key, err := json.Marshal(m) // map keys sorted: canonical
	if err != nil {
		return nil, fmt.Errorf("encode mapping: %w", err)
	}
	rd := &Reader{m: m, o: o, cols: m.columnNames(), mappingKey: key, receivedAt: o.ReceivedAt.UTC().Truncate(time.Microsecond)}
	for _, c := range rd.cols {
		if m.Columns[c].Identifier != "" {
			rd.idCols = append(rd.idCols, c)
		}
	}
	switch o.Format {
	case CSV:
		return rd, rd.startCSV(r)
	case NDJSON:
		rd.br = bufio.NewReaderSize(r, 64*1024)
		return rd, nil
	}
	return nil, &MappingError{Errors: []FieldError{{Field: "format", Reason: fmt.Sprintf("%q is not csv or ndjson", o.Format)}}}
}

func (r *Reader) startCSV(in io.Reader) error {
	r.cr = csv.NewReader(in)
	r.cr.FieldsPerRecord = -1 // a row of the wrong width is a bad row, not the end of the file
	r.cr.ReuseRecord = true
	if r.m.Delimiter != "" {
		r.cr.Comma, _ = utf8.DecodeRuneInString(r.m.Delimiter)
	}
	header, err := r.cr.Read()
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return &MappingError{Errors: []FieldError{{Field: "file", Reason: "is empty: a CSV file starts with a header row naming its columns"}}}
	case errors.As(err, &pe):
		return &MappingError{Errors: []FieldError{{Field: "file", Reason: "the header row is not valid CSV: " + pe.Error()}}}
	case err != nil:
		return fmt.Errorf("read CSV header: %w", err)
	}
	r.header = make([]string, len(header))
	r.index = make(map[string]int, len(header))
	dups := map[string]bool{}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // the byte-order mark spreadsheets write
		}
		h = strings.TrimSpace(h)
		r.header[i] = h
		if _, seen := r.index[h]; seen {
			dups[h] = true
			continue
		}
		r.index[h] = i
	}
	var errs []FieldError
	for _, ref := range r.m.referenced() {
		switch {
		case dups[ref.column]:
			errs = append(errs, FieldError{Field: ref.field, Reason: fmt.Sprintf("column %q appears more than once in the header", ref.column)})
		case !hasKey(r.index, ref.column):
			errs = append(errs, FieldError{Field: ref.field, Reason: fmt.Sprintf("column %q is not in the file's header, which has: %s", ref.column, headerList(r.header))})
		}
	}
	if len(errs) > 0 {
		return &MappingError{Errors: errs}
	}
	return nil
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

func headerList(h []string) string {
	const shown = 30
	quoted := make([]string, 0, min(len(h), shown)+1)
	for i, c := range h {
		if i == shown {
			quoted = append(quoted, fmt.Sprintf("... (%d more)", len(h)-shown))
			break
		}
		quoted = append(quoted, strconv.Quote(c))
	}
	return strings.Join(quoted, ", ")
}

// Next returns the next row's record. A row that cannot become a record is
// a *RowError, and the next call goes on with the following row. At the
// end of the file Next returns io.EOF; any other error is fatal.
func (r *Reader) Next() (events.Message, error) {
	rw, err := r.readRow()
	if err != nil {
		return events.Message{}, err
	}
	return r.convert(rw)
}

// Chunk is up to n rows of a file: the records, and the rows that are not.
type Chunk struct {
	Messages []events.Message
	Bad      []*RowError
}

// Rows is the number of rows in the chunk.
func (c Chunk) Rows() int { return len(c.Messages) + len(c.Bad) }

// ReadChunk reads up to n rows. It returns io.EOF, with an empty chunk, once
// every row was returned.
func (r *Reader) ReadChunk(n int) (Chunk, error) {
	var c Chunk
	for c.Rows() < n {
		m, err := r.Next()
		var re *RowError
		switch {
		case errors.Is(err, io.EOF):
			if c.Rows() == 0 {
				return c, io.EOF
			}
			return c, nil
		case errors.As(err, &re):
			c.Bad = append(c.Bad, re)
		case err != nil:
			return c, err
		default:
			c.Messages = append(c.Messages, m)
		}
	}
	return c, nil
}

// CountRows counts the rows of a file as a Reader would return them, without
// converting them, so that progress can be reported against a total.
func CountRows(in io.Reader, m *Mapping, o Options) (int, error) {
	r, err := NewReader(in, m, o)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, err := r.readRow()
		var re *RowError
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err == nil, errors.As(err, &re):
			n++
		default:
			return n, err
		}
	}
}

// readRow reads one row. Unreadable rows are *RowError.
func (r *Reader) readRow() (*row, error) {
	if r.cr != nil {
		return r.readCSV()
	}
	return r.readNDJSON()
}

func (r *Reader) readCSV() (*row, error) {
	fields, err := r.cr.Read()
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	case errors.As(err, &pe):
		reason := "is not valid CSV: " + pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrBareQuote) || errors.Is(pe.Err, csv.ErrQuote) {
			reason += " (a field with a quote must be quoted, with the quote doubled: \"5\"\" screen\")"
		}
		return nil, &RowError{Line: pe.StartLine, Reason: reason, Raw: []byte(fmt.Sprintf("(unreadable CSV row at line %d)", pe.StartLine))}
	case err != nil:
		return nil, fmt.Errorf("read CSV: %w", err)
	}
	line, _ := r.cr.FieldPos(0)
	rw := &row{line: line, fields: fields, raw: r.csvRaw(fields)}
	if len(fields) != len(r.header) {
		return nil, &RowError{Line: line, Reason: fmt.Sprintf("has %d fields where the header has %d (is a value with the delimiter in it not quoted?)", len(fields), len(r.header)), Raw: rw.raw}
	}
	for i, f := range fields {
		if !utf8.ValidString(f) {
			return nil, &RowError{Line: line, Field: r.header[i], Reason: "is not valid UTF-8 text: export the file as UTF-8", Raw: rw.raw}
		}
		if strings.ContainsRune(f, 0) {
			return nil, &RowError{Line: line, Field: r.header[i], Reason: "contains a NUL character", Raw: rw.raw}
		}
	}
	if len(rw.raw) > maxRowBytes {
		return nil, &RowError{Line: line, Reason: fmt.Sprintf("is larger than %d KB, the most one record may be", maxRowBytes/1024), Raw: rw.raw}
	}
	return rw, nil
}

// csvRaw is the row as a JSON object of header → value, in column order:
// what the audit trail keeps of it.
func (r *Reader) csvRaw(fields []string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		name := fmt.Sprintf("column_%d", i+1)
		if i < len(r.header) && r.header[i] != "" {
			name = r.header[i]
		}
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(strings.ToValidUTF8(name, "\uFFFD"))
		v, _ := json.Marshal(strings.ToValidUTF8(f, "\uFFFD"))
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func (r *Reader) readNDJSON() (*row, error) {
	for {
		data, tooLong, err := r.readLine()
		if err != nil {
			return nil, err
		}
		r.line++
		if tooLong {
			return nil, &RowError{Line: r.line, Reason: fmt.Sprintf("is larger than %d KB, the most one record may be", maxRowBytes/1024), Raw: []byte(fmt.Sprintf("(line %d too long to keep)", r.line))}
		}
		data = bytes.TrimSpace(data)
		if len(data) == 0 {
			continue // blank lines are not rows
		}
		raw := bytes.Clone(data)
		if !utf8.Valid(raw) {
			return nil, &RowError{Line: r.line, Reason: "is not valid UTF-8 text: export the file as UTF-8", Raw: raw}
		}
		if bytes.Contains(raw, []byte(`\u0000`)) {
			return nil, &RowError{Line: r.line, Reason: "contains a NUL character (\\u0000)", Raw: raw}
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil || obj == nil {
			reason := "is not a JSON object"
			if err != nil {
				reason += ": " + err.Error()
			}
			return nil, &RowError{Line: r.line, Reason: reason, Raw: raw}
		}
		if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
			return nil, &RowError{Line: r.line, Reason: "has something after the JSON object: put one object per line", Raw: raw}
		}
		return &row{line: r.line, obj: obj, raw: raw}, nil
	}
}

// readLine returns the next line; a line longer than maxRowBytes is
// skipped to its end and reported tooLong.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	r.buf = r.buf[:0]
	read := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !tooLong {
			if len(r.buf)+len(chunk) > maxRowBytes+2 { // +2: the line break
				tooLong, r.buf = true, r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return r.buf, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if !read {
				return nil, false, io.EOF
			}
			return r.buf, tooLong, nil
		default:
			return nil, false, fmt.Errorf("read line %d: %w", r.line+1, err)
		}
	}
}

// value returns a column's value in a row: a string for CSV, any JSON value
// for NDJSON; nil when absent.
func (r *Reader) value(rw *row, col string) any {
	if rw.fields != nil {
		if i, ok := r.index[col]; ok && i < len(rw.fields) {
			return rw.fields[i]
		}
		return nil
	}
	if v, ok := rw.obj[col]; ok {
		return v
	}
	// "a.b" reaches a nested field.
	var cur any = rw.obj
	for part := range strings.SplitSeq(col, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}

// convert makes a row a record.
func (r *Reader) convert(rw *row) (events.Message, error) {
	bad := func(field, reason string) (events.Message, error) {
		return events.Message{}, &RowError{Line: rw.line, Field: field, Reason: reason, Raw: rw.raw}
	}
	m := events.Message{
		Type:       events.TypeIdentify,
		Properties: map[string]any{},
		Traits:     map[string]any{},
		Context: map[string]any{
			"library": map[string]any{"name": "parcours-import"},
			"import":  map[string]any{"id": r.o.ImportID, "line": rw.line},
		},
		Integrations: map[string]any{},
		ReceivedAt:   r.receivedAt,
		Raw:          json.RawMessage(rw.raw),
	}
	if ev := r.m.Event; ev != nil {
		m.Type, m.Event = events.TypeTrack, ev.Name
		if ev.NameColumn != "" {
			name, err := idString(r.value(rw, ev.NameColumn))
			switch {
			case err != nil:
				return bad(ev.NameColumn, err.Error())
			case name == "":
				return bad(ev.NameColumn, "is empty: each row needs the name of its event, e.g. \"Order Completed\"")
			case len(name) > maxNameLen:
				return bad(ev.NameColumn, fmt.Sprintf("is longer than %d characters", maxNameLen))
			}
			m.Event = name
		}
	}

	// Identifiers: at least one, and each one valid.
	traits := m.Traits
	if m.Type == events.TypeTrack {
		traits = map[string]any{}
		m.Context["traits"] = traits
	}
	for _, col := range r.idCols {
		v, err := idString(r.value(rw, col))
		if err != nil {
			return bad(col, err.Error())
		}
		if v == "" {
			continue
		}
		typ, _ := identifierType(r.m.Columns[col].Identifier)
		switch typ {
		case identity.UserID:
			m.UserID = v
		case identity.AnonymousID:
			m.AnonymousID = v
		default:
			if identity.Normalize(typ, v) == "" {
				return bad(col, fmt.Sprintf("%q is not a valid %s", v, typ))
			}
			traits[typ] = v
		}
	}
	if m.UserID == "" && m.AnonymousID == "" && len(traits) == 0 {
		reason := "is empty: a row needs an identifier"
		if len(r.idCols) > 1 {
			reason = "is empty, and so are the other identifier columns (" + strings.Join(r.idCols[1:], ", ") + "): a row needs at least one"
		}
		return bad(r.idCols[0], reason)
	}

	// Traits and properties.
	for _, col := range r.cols {
		c := r.m.Columns[col]
		if c.Trait == "" && c.Property == "" {
			continue
		}
		v, err := convertValue(r.value(rw, col), c.Type, r.m.TimeLayout)
		if err != nil {
			return bad(col, err.Error())
		}
		if v == nil {
			continue // an empty cell sets nothing
		}
		if c.Trait != "" {
			traits[c.Trait] = v
		}
		if c.Property != "" {
			m.Properties[c.Property] = v
		}
	}

	if col := r.m.TimestampColumn; col != "" {
		v, err := convertValue(r.value(rw, col), TypeTime, r.m.TimeLayout)
		if err != nil {
			return bad(col, err.Error())
		}
		if v != nil {
			m.OriginalTimestamp, _ = time.Parse(time.RFC3339Nano, v.(string))
		}
	}
	m.Timestamp = events.CorrectTimestamp(m.OriginalTimestamp, time.Time{}, m.ReceivedAt)

	id := ""
	if col := r.m.IDColumn; col != "" {
		v, err := idString(r.value(rw, col))
		switch {
		case err != nil:
			return bad(col, err.Error())
		case v == "":
			return bad(col, "is empty: it is the row's id (id_column)")
		}
		id = v
	}
	m.MessageID = r.messageID(rw.line, id, m.Type+":"+m.Event)
	return m, nil
}

// messageID is the record's deterministic id: from the id column (scoped by
// namespace and kind of record), else from the file's content, the mapping
// and the line.
func (r *Reader) messageID(line int, id, kind string) string {
	h := sha256.New()
	write := func(parts ...string) {
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
	}
	if id != "" {
		write("id", r.o.Namespace, kind, id)
	} else {
		write("line", r.o.FileHash, string(r.mappingKey), strconv.Itoa(line))
	}
	return "import-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// idString reads an identifier: a string (trimmed) or a number.
func idString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(x), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("must be a string or a number, not %s", jsonKind(v))
}

// convertValue converts a cell to typ. Empty cells are nil: they set nothing.
func convertValue(v any, typ, layout string) (any, error) {
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, nil
		}
		v = s
	}
	if v == nil {
		return nil, nil
	}
	switch typ {
	case "":
		return v, nil
	case TypeString:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number, bool:
			return fmt.Sprint(x), nil
		}
	case TypeNumber:
		var f float64
		var err error
		switch x := v.(type) {
		case string:
			f, err = strconv.ParseFloat(x, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%q is not a number (write decimals with a dot and no thousands separator: 1234.5)", x)
			}
			return f, nil
		case json.Number:
			if f, err = x.Float64(); err != nil {
				return nil, fmt.Errorf("%s is out of range", x)
			}
			return f, nil
		}
	case TypeInteger:
		s := ""
		switch x := v.(type) {
		case string:
			s = x
		case json.Number:
			s = x.String()
		default:
			return nil, fmt.Errorf("must be a whole number, not %s", jsonKind(v))
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return n, nil
	case TypeBoolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(x) {
			case "true", "yes", "y", "1", "t":
				return true, nil
			case "false", "no", "n", "0", "f":
				return false, nil
			}
			return nil, fmt.Errorf("%q is not a boolean (true/false, yes/no, 1/0)", x)
		case json.Number:
			switch x.String() {
			case "1":
				return true, nil
			case "0":
				return false, nil
			}
			return nil, fmt.Errorf("%s is not a boolean (true/false, yes/no, 1/0)", x)
		}
	case TypeTime:
		if s, ok := v.(string); ok {
			t, err := parseTime(s, layout)
			if err != nil {
				return nil, err
			}
			return t.Format(time.RFC3339Nano), nil
		}
	}
	return nil, fmt.Errorf("must be a %s, not %s", typ, jsonKind(v))
}

// isoLayouts are the time formats accepted without a time_layout.
var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

func parseTime(s, layout string) (time.Time, error) {
	if layout != "" {
		t, err := time.Parse(layout, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q does not match the time_layout %q", s, layout)
		}
		return t.UTC(), nil
	}
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date-time such as 2026-11-29T08:30:00Z (set time_layout for other formats)", s)
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "text"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
