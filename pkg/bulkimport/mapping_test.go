package bulkimport

import (
	"errors"
	"strings"
	"testing"
)

func TestImportParseMappingNamesTheFieldAtFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		doc   string
		field string // "" means valid
		has   string
	}{
		{"identify by email", `{"columns":{"Email":{"identifier":"email"},"First":{"trait":"first_name"}}}`, "", ""},
		{"userId spelt both ways", `{"columns":{"id":{"identifier":"user_id"},"anon":{"identifier":"anonymousId"}}}`, "", ""},
		{"track with properties", `{"columns":{"email":{"identifier":"email"},"total":{"property":"total","type":"number"}},"event":{"name":"Order Completed"},"id_column":"order","timestamp_column":"at"}`, "", ""},
		{"empty", ``, "mapping", "empty"},
		{"not JSON", `{"columns":`, "mapping", "not valid JSON"},
		{"trailing garbage", `{"columns":{"e":{"identifier":"email"}}} x`, "mapping", "after"},
		{"misspelt field", `{"colums":{}}`, "colums", "unknown field"},
		{"misspelt column field", `{"columns":{"e":{"identifer":"email"}}}`, "identifer", "unknown field"},
		{"wrong type", `{"columns":[]}`, "columns", "wrong type"},
		{"no columns", `{}`, "columns", "empty"},
		{"no identifier", `{"columns":{"First":{"trait":"first_name"}}}`, "columns", "no column is an identifier"},
		{"column fills nothing", `{"columns":{"e":{"identifier":"email"},"x":{}}}`, "columns.x", "fills nothing"},
		{"bad identifier", `{"columns":{"e":{"identifier":"E-mail"}}}`, "columns.e.identifier", "not an identifier"},
		{"identifier into other trait", `{"columns":{"e":{"identifier":"email","trait":"mail"}}}`, "columns.e.trait", "own name"},
		{"two columns one trait", `{"columns":{"a":{"identifier":"email"},"b":{"trait":"email"}}}`, "columns.b.trait", "already filled"},
		{"property without event", `{"columns":{"e":{"identifier":"email"},"t":{"property":"total"}}}`, "columns.t.property", "event.name"},
		{"bad type", `{"columns":{"e":{"identifier":"email"},"t":{"trait":"x","type":"float"}}}`, "columns.t.type", "not one of"},
		{"event without name", `{"columns":{"e":{"identifier":"email"}},"event":{}}`, "event", "needs a name"},
		{"event with both", `{"columns":{"e":{"identifier":"email"}},"event":{"name":"A","name_column":"b"}}`, "event", "not both"},
		{"layout without year", `{"columns":{"e":{"identifier":"email"}},"time_layout":"15:04"}`, "time_layout", "year"},
		{"long delimiter", `{"columns":{"e":{"identifier":"email"}},"delimiter":";;"}`, "delimiter", "one character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMapping([]byte(tt.doc))
			if tt.field == "" {
				if err != nil || m == nil {
					t.Fatalf("valid mapping refused: %v", err)
				}
				return
			}
			var me *MappingError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *MappingError", err)
			}
			for _, f := range me.Errors {
				if f.Field == tt.field && strings.Contains(f.Reason, tt.has) {
					return
				}
			}
			t.Fatalf("errors %+v do not name %s with %q", me.Errors, tt.field, tt.has)
		})
	}
}

func TestImportFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want Format
		ok   bool
	}{
		{"contacts.csv", CSV, true},
		{"Contacts.CSV", CSV, true},
		{"orders.ndjson", NDJSON, true},
		{"orders.jsonl", NDJSON, true},
		{"export.csv.txt", CSV, true},
		{"orders.json", "", false},
		{"upload", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, ok := FormatFromName(tt.name); got != tt.want || ok != tt.ok {
				t.Fatalf("FormatFromName(%q) = %q %v, want %q %v", tt.name, got, ok, tt.want, tt.ok)
			}
		})
	}
	if f, ok := ParseFormat(" JSONL "); !ok || f != NDJSON {
		t.Fatalf("ParseFormat(jsonl) = %q %v", f, ok)
	}
	if _, ok := ParseFormat("xlsx"); ok {
		t.Fatal("xlsx accepted")
	}
}

func TestImportIdentifierTraits(t *testing.T) {
	t.Parallel()
	m, err := ParseMapping([]byte(`{"columns":{"Email":{"identifier":"email"},"No":{"identifier":"customer_number"},"id":{"identifier":"userId"},"n":{"trait":"name"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := m.IdentifierTraits()
	if len(got) != 2 || got["email"] != "Email" || got["customer_number"] != "No" {
		t.Fatalf("IdentifierTraits = %v", got)
	}
}
