package csvsafe_test

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/parcours/parcours/pkg/csvsafe"
)

func TestCell(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`=HYPERLINK("https://evil.example","x")`, `'=HYPERLINK("https://evil.example","x")`},
		{"=1+1", "'=1+1"},
		{"+33612345678", "+33612345678"}, // a number as spreadsheets read it
		{"+1 555 0100", "'+1 555 0100"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1:A9)", "'@SUM(A1:A9)"},
		{"\tcmd", "'\tcmd"},
		{"\r=1", "'\r=1"},
		{"\n=1", "'\n=1"},
		{"\x00=1", "'\x00=1"},
		{"  =1+1", "'  =1+1"}, // after leading spaces
		{`=cmd|' /C calc'!A0`, `'=cmd|' /C calc'!A0`},
		{"-12.50", "-12.50"},
		{"1e-3", "1e-3"},
		{"-.5", "-.5"},
		{"-Inf", "'-Inf"},
		{"ana@example.com", "ana@example.com"},
		{"a=b", "a=b"},
		{"", ""},
		{"   ", "   "},
		{"'=already", "'=already"},
		{"web · =HYPERLINK()", "web · =HYPERLINK()"}, // not at the start of a cell
	} {
		if got := csvsafe.Cell(tc.in); got != tc.want {
			t.Errorf("Cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriterNeutralisesEveryCell(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := csvsafe.NewWriter(&b)
	if err := w.Write([]string{"id", "name"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAll([][]string{{"1", "=1+1"}, {"-3", `@x,"y"`}}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"id", "name"}, {"1", "'=1+1"}, {"-3", `'@x,"y"`}}
	for i := range want {
		for j := range want[i] {
			if recs[i][j] != want[i][j] {
				t.Errorf("record %d cell %d = %q, want %q", i, j, recs[i][j], want[i][j])
			}
		}
	}
}
