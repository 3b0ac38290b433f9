package bulkimport

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
)

var receivedAt = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func mustMapping(t *testing.T, doc string) *Mapping {
	t.Helper()
	m, err := ParseMapping([]byte(doc))
	if err != nil {
		t.Fatalf("mapping: %v", err)
	}
	return m
}

// readAll reads every row of a file.
func readAll(t *testing.T, format Format, file, mapping string) ([]events.Message, []*RowError) {
	t.Helper()
	r, err := NewReader(strings.NewReader(file), mustMapping(t, mapping), Options{Format: format, FileHash: "h1", Namespace: "crm", ImportID: "imp-1", ReceivedAt: receivedAt})
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var msgs []events.Message
	var bad []*RowError
	for {
		m, err := r.Next()
		var re *RowError
		switch {
		case errors.Is(err, io.EOF):
			return msgs, bad
		case errors.As(err, &re):
			bad = append(bad, re)
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			msgs = append(msgs, m)
		}
	}
}

const contactsMapping = `{"columns":{
	"email":    {"identifier":"email"},
	"customer": {"identifier":"customer_number"},
	"first":    {"trait":"first_name"},
	"ltv":      {"trait":"lifetime_value","type":"number"},
	"vip":      {"trait":"vip","type":"boolean"},
	"since":    {"trait":"customer_since","type":"time"}}}`

func TestImportCSVRowsBecomeIdentifyRecords(t *testing.T) {
	t.Parallel()
	file := "\ufeffemail,customer,first,ltv,vip,since\n" +
		"Ana@Example.com,C-1,Ana,120.5,yes,2024-03-01\n" +
		",C-2,\"Bob, Jr\",,no,\n"
	msgs, bad := readAll(t, CSV, file, contactsMapping)
	if len(bad) != 0 || len(msgs) != 2 {
		t.Fatalf("%d records, bad %v", len(msgs), bad)
	}
	ana := msgs[0]
	if ana.Type != events.TypeIdentify || ana.Traits["email"] != "Ana@Example.com" || ana.Traits["customer_number"] != "C-1" ||
		ana.Traits["first_name"] != "Ana" || ana.Traits["lifetime_value"] != 120.5 || ana.Traits["vip"] != true ||
		ana.Traits["customer_since"] != "2024-03-01T00:00:00Z" {
		t.Fatalf("traits %v", ana.Traits)
	}
	if !ana.Timestamp.Equal(receivedAt) || !ana.ReceivedAt.Equal(receivedAt) {
		t.Fatalf("timestamp %v received %v, want the upload time", ana.Timestamp, ana.ReceivedAt)
	}
	if imp := ana.Context["import"].(map[string]any); imp["line"] != 2 || imp["id"] != "imp-1" {
		t.Fatalf("context %v", ana.Context)
	}
	if string(ana.Raw) != `{"email":"Ana@Example.com","customer":"C-1","first":"Ana","ltv":"120.5","vip":"yes","since":"2024-03-01"}` {
		t.Fatalf("raw %s", ana.Raw)
	}
	bob := msgs[1]
	if _, ok := bob.Traits["lifetime_value"]; ok {
		t.Fatalf("an empty cell set a trait: %v", bob.Traits)
	}
	if bob.Traits["first_name"] != "Bob, Jr" || bob.Traits["vip"] != false {
		t.Fatalf("traits %v", bob.Traits)
	}
	if !strings.HasPrefix(ana.MessageID, "import-") || ana.MessageID == bob.MessageID {
		t.Fatalf("messageIds %q %q", ana.MessageID, bob.MessageID)
	}
}

func TestImportBadRowsAreReportedWithLineAndReason(t *testing.T) {
	t.Parallel()
	file := "email,customer,first,ltv,vip,since\n" +
		"ana@example.com,C-1,Ana,1,yes,2024-03-01\n" + // line 2: fine
		",,Nobody,1,yes,\n" + // 3: no identifier
		"bob@example.com,C-2,Bob,12,50,no,\n" + // 4: an unquoted comma
		"carl@example.com,C-3,Carl,12a,no,\n" + // 5: not a number
		"dan@example.com,C-4,Dan,1,perhaps,\n" + // 6: not a boolean
		"eve@example.com,C-5,Eve,1,no,yesterday\n" + // 7: not a time
		"not-an-email,C-6,Fay,1,no,\n" + // 8: invalid email
		"gus@example.com,C-7,\"Gus \"the\" Great\",1,no,\n" + // 9: bad quoting
		"hal@example.com,C-8,Hal,1,no,\n" // 10: fine after all that
	msgs, bad := readAll(t, CSV, file, contactsMapping)
	if len(msgs) != 2 || msgs[1].Traits["first_name"] != "Hal" {
		t.Fatalf("%d good records (%v), want Ana and Hal", len(msgs), msgs)
	}
	want := []struct {
		label, has string
	}{
		{"line 3: customer", "a row needs at least one"},
		{"line 4", "7 fields where the header has 6"},
		{"line 5: ltv", `"12a" is not a number`},
		{"line 6: vip", "not a boolean"},
		{"line 7: since", "not an ISO 8601"},
		{"line 8: email", "not a valid email"},
		{"line 9", "not valid CSV"},
	}
	if len(bad) != len(want) {
		t.Fatalf("bad rows %v, want %d", bad, len(want))
	}
	for i, w := range want {
		if bad[i].Label() != w.label || !strings.Contains(bad[i].Reason, w.has) || len(bad[i].Raw) == 0 {
			t.Errorf("bad row %d = %q %q (raw %q), want %q saying %q", i, bad[i].Label(), bad[i].Reason, bad[i].Raw, w.label, w.has)
		}
	}
	rej := bad[0].Rejection(receivedAt)
	if rej.Field != "line 3: customer" || !strings.Contains(string(rej.Raw), "Nobody") {
		t.Fatalf("rejection %+v", rej)
	}
}

func TestImportTrackRowsAndMessageIDs(t *testing.T) {
	t.Parallel()
	mapping := `{"columns":{
		"email": {"identifier":"email"},
		"name":  {"trait":"first_name"},
		"total": {"property":"total","type":"number"},
		"qty":   {"property":"quantity","type":"integer"},
		"store": {"property":"store","trait":"preferred_store"}},
	 "event": {"name":"Order Completed"},
	 "id_column": "order",
	 "timestamp_column": "at",
	 "time_layout": "02/01/2006 15:04",
	 "delimiter": ";"}`
	file := "order;email;name;total;qty;store;at\n" +
		"1001;ana@example.com;Ana;120.50;2;Lyon;28/11/2026 09:15\n" +
		"1002;ana@example.com;Ana;30;1;Paris;2026-11-28\n" +
		";bob@example.com;Bob;30;1;Paris;28/11/2026 09:15\n" +
		"1003;bob@example.com;Bob;30;1.5;Paris;28/11/2026 09:15\n"
	m := mustMapping(t, mapping)
	r, err := NewReader(strings.NewReader(file), m, Options{Format: CSV, FileHash: "h1", Namespace: "store", ReceivedAt: receivedAt})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.ReadChunk(500)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadChunk(500); !errors.Is(err, io.EOF) {
		t.Fatalf("second chunk: %v, want io.EOF", err)
	}
	if len(c.Messages) != 1 || c.Rows() != 4 {
		t.Fatalf("chunk of %d rows with %d records; bad %v", c.Rows(), len(c.Messages), c.Bad)
	}
	o := c.Messages[0]
	if o.Type != events.TypeTrack || o.Event != "Order Completed" || o.Properties["total"] != 120.5 || o.Properties["quantity"] != int64(2) || o.Properties["store"] != "Lyon" {
		t.Fatalf("order %+v", o)
	}
	if ct := o.ContextTraits(); ct["email"] != "ana@example.com" || ct["first_name"] != "Ana" || ct["preferred_store"] != "Lyon" || len(o.Traits) != 0 {
		t.Fatalf("a track row's traits go in context.traits: %v / %v", ct, o.Traits)
	}
	if want := time.Date(2026, 11, 28, 9, 15, 0, 0, time.UTC); !o.Timestamp.Equal(want) || !o.OriginalTimestamp.Equal(want) {
		t.Fatalf("timestamp %v, want %v", o.Timestamp, want)
	}
	for i, w := range []string{"line 3: at", "line 4: order", "line 5: qty"} {
		if c.Bad[i].Label() != w {
			t.Errorf("bad row %d is %q (%s), want %q", i, c.Bad[i].Label(), c.Bad[i].Reason, w)
		}
	}
	// The id column makes the messageId: same id, same record, whatever the file.
	again, _ := readAll(t, CSV, "order;email;at\n1001;other@example.com;\n",
		`{"columns":{"email":{"identifier":"email"}},"event":{"name":"Order Completed"},"id_column":"order","delimiter":";"}`)
	other := func(ns string) string {
		r, _ := NewReader(strings.NewReader("order,email\n1001,a@example.com\n"), mustMapping(t, `{"columns":{"email":{"identifier":"email"}},"event":{"name":"Order Completed"},"id_column":"order"}`), Options{Format: CSV, Namespace: ns})
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		return m.MessageID
	}
	if other("store") != o.MessageID {
		t.Fatal("the same order id from the same source got another messageId")
	}
	if len(again) != 1 || again[0].MessageID == o.MessageID { // readAll uses namespace crm
		t.Fatal("order 1001 of another source has the same messageId")
	}
}

func TestImportLineMessageIDsDependOnFileAndMapping(t *testing.T) {
	t.Parallel()
	file := "email\nana@example.com\n"
	id := func(hash, mapping string) string {
		r, err := NewReader(strings.NewReader(file), mustMapping(t, mapping), Options{Format: CSV, FileHash: hash})
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		return m.MessageID
	}
	base := `{"columns":{"email":{"identifier":"email"}}}`
	if id("h1", base) != id("h1", base) {
		t.Fatal("messageId is not deterministic")
	}
	if id("h1", base) == id("h2", base) {
		t.Fatal("two files share messageIds")
	}
	if id("h1", base) == id("h1", `{"columns":{"email":{"identifier":"email","trait":"email"}}}`) {
		t.Fatal("a corrected mapping cannot re-import the file")
	}
}

func TestImportNDJSONRows(t *testing.T) {
	t.Parallel()
	mapping := `{"columns":{
		"userId":         {"identifier":"userId"},
		"contact.email":  {"identifier":"email"},
		"plan":           {"trait":"plan"},
		"seats":          {"trait":"seats","type":"integer"},
		"tags":           {"trait":"tags"}}}`
	long := `{"userId":"u9","plan":"` + strings.Repeat("x", 40*1024) + `"}`
	file := `{"userId":42,"contact":{"email":"ana@example.com"},"plan":"pro","seats":3,"tags":["a","b"]}` + "\n" +
		"\n" + // blank: not a row
		`{"userId":"u2","seats":"many"}` + "\n" + // line 3
		`not json` + "\n" + // 4
		`[1,2]` + "\n" + // 5
		`{"plan":"free"}` + "\n" + // 6: no identifier
		`{"userId":true}` + "\n" + // 7
		long + "\n" + // 8
		`{"userId":"u3"} {"userId":"u4"}` + "\n" + // 9
		`{"userId":"u5"}` // 10, no final newline
	msgs, bad := readAll(t, NDJSON, file, mapping)
	if len(msgs) != 2 || msgs[0].UserID != "42" || msgs[0].Traits["email"] != "ana@example.com" || msgs[0].Traits["seats"] != int64(3) ||
		fmt.Sprint(msgs[0].Traits["tags"]) != "[a b]" || msgs[1].UserID != "u5" {
		t.Fatalf("records %+v", msgs)
	}
	want := []string{"line 3: seats", "line 4", "line 5", "line 6: contact.email", "line 7: userId", "line 8", "line 9"}
	if len(bad) != len(want) {
		t.Fatalf("bad rows %v, want %v", bad, want)
	}
	for i, w := range want {
		if bad[i].Label() != w {
			t.Errorf("bad row %d = %q (%s), want %q", i, bad[i].Label(), bad[i].Reason, w)
		}
	}
	if !strings.Contains(bad[5].Reason, "32 KB") {
		t.Errorf("long line reason %q", bad[5].Reason)
	}
	n, err := CountRows(strings.NewReader(file), mustMapping(t, mapping), Options{Format: NDJSON})
	if err != nil || n != 9 {
		t.Fatalf("CountRows = %d %v, want 9", n, err)
	}
}

func TestImportHeaderMustHaveTheMappedColumns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, mapping, field, has string
	}{
		{"missing column", "Email,Name\n", `{"columns":{"email":{"identifier":"email"}}}`, "columns.email", `"Email", "Name"`},
		{"missing id column", "email\n", `{"columns":{"email":{"identifier":"email"}},"id_column":"id"}`, "id_column", "not in the file's header"},
		{"missing event column", "email\n", `{"columns":{"email":{"identifier":"email"}},"event":{"name_column":"ev"}}`, "event.name_column", "not in"},
		{"duplicate column", "email,email\n", `{"columns":{"email":{"identifier":"email"}}}`, "columns.email", "more than once"},
		{"empty file", "", `{"columns":{"email":{"identifier":"email"}}}`, "file", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewReader(strings.NewReader(tt.file), mustMapping(t, tt.mapping), Options{Format: CSV})
			var me *MappingError
			if !errors.As(err, &me) || me.Errors[0].Field != tt.field || !strings.Contains(me.Errors[0].Reason, tt.has) {
				t.Fatalf("err = %v, want %s saying %q", err, tt.field, tt.has)
			}
		})
	}
}

func TestImportCountRowsMatchesTheRowsRead(t *testing.T) {
	t.Parallel()
	file := "email,n\na@example.com,1\n\n\"b@example.com\",\"two\nlines\"\nbad\"quote,3\nc@example.com,4,extra\n"
	m := mustMapping(t, `{"columns":{"email":{"identifier":"email"},"n":{"trait":"n"}}}`)
	n, err := CountRows(strings.NewReader(file), m, Options{Format: CSV})
	if err != nil {
		t.Fatal(err)
	}
	msgs, bad := readAll(t, CSV, file, `{"columns":{"email":{"identifier":"email"},"n":{"trait":"n"}}}`)
	if n != len(msgs)+len(bad) || n != 4 {
		t.Fatalf("CountRows %d, read %d records and %d bad rows", n, len(msgs), len(bad))
	}
	if msgs[1].Traits["n"] != "two\nlines" {
		t.Fatalf("multi-line field %q", msgs[1].Traits["n"])
	}
}

func FuzzReader(f *testing.F) {
	f.Add("email,n\na@example.com,1\n", byte(0))
	f.Add(`{"email":"a@example.com","n":1}`+"\n", byte(1))
	f.Add("email,n\n\"a,1\n", byte(0))
	m, err := ParseMapping([]byte(`{"columns":{"email":{"identifier":"email"},"n":{"trait":"n","type":"number"}}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, file string, format byte) {
		fm := CSV
		if format%2 == 1 {
			fm = NDJSON
		}
		r, err := NewReader(strings.NewReader(file), m, Options{Format: fm, ReceivedAt: receivedAt})
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			msg, err := r.Next()
			var re *RowError
			switch {
			case errors.Is(err, io.EOF):
				return
			case errors.As(err, &re):
				if re.Line <= 0 {
					t.Fatalf("row error without a line: %v", re)
				}
			case err != nil:
				t.Fatalf("fatal error on an in-memory file: %v", err)
			default:
				if msg.MessageID == "" || (msg.UserID == "" && msg.Traits["email"] == nil) {
					t.Fatalf("record without id or identifier: %+v", msg)
				}
			}
		}
		t.Fatal("reader does not end")
	})
}
