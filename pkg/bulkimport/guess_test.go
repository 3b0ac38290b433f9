package bulkimport

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestReadHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file string
		format     Format
		want       Header
		err        string
	}{
		{"comma CSV with a byte-order mark", "\ufeffEmail,First name\na@x.io,Ada\n", CSV, Header{Columns: []string{"Email", "First name"}}, ""},
		{"semicolon CSV from a spreadsheet", "\n Email ;\"Nom, prénom\"\r\na@x.io;Ada\n", CSV, Header{Columns: []string{"Email", "Nom, prénom"}, Delimiter: ";"}, ""},
		{"tab-separated", "email\tphone\n", CSV, Header{Columns: []string{"email", "phone"}, Delimiter: "\t"}, ""},
		{"NDJSON, nested one level", `{"userId":"1","traits":{"email":"a@x.io","address":{"city":"Lyon"}}}` + "\n", NDJSON,
			Header{Columns: []string{"traits.email", "userId"}}, ""},
		{"empty file", "\n \n", CSV, Header{}, "file: is empty"},
		{"NDJSON that is not JSON", "email,phone\n", NDJSON, Header{}, "file: the first line is not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadHeader(strings.NewReader(tt.file), tt.format)
			if tt.err != "" {
				var me *MappingError
				if !errors.As(err, &me) || !strings.Contains(me.Errors[0].Field+": "+me.Errors[0].Reason, tt.err) {
					t.Fatalf("error %v, want a mapping error %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func TestGuessMapping(t *testing.T) {
	t.Parallel()
	traits := []string{"email", "phone", "customer_number"}
	tests := []struct {
		name    string
		columns []string
		event   string
		want    Mapping
		err     string
	}{
		{
			name:    "a contact list: identifiers by their usual names, the rest traits",
			columns: []string{"E-mail", "Mobile", "Customer Number", "First name", "Plan"},
			want: Mapping{Columns: map[string]Column{
				"E-mail": {Identifier: "email"}, "Mobile": {Identifier: "phone"}, "Customer Number": {Identifier: "customer_number"},
				"First name": {Trait: "first_name"}, "Plan": {Trait: "plan"},
			}},
		},
		{
			name:    "orders: the event given, a time column, amounts as numbers",
			columns: []string{"user_id", "Ordered at", "Total", "Coupon"},
			event:   "Order Completed",
			want: Mapping{Event: &Event{Name: "Order Completed"}, TimestampColumn: "Ordered at", Columns: map[string]Column{
				"user_id": {Identifier: "userId"}, "Total": {Property: "total", Type: TypeNumber}, "Coupon": {Property: "coupon"},
			}},
		},
		{
			name:    "an event column names each row's event",
			columns: []string{"email", "Event", "timestamp"},
			want: Mapping{Event: &Event{NameColumn: "Event"}, TimestampColumn: "timestamp", Columns: map[string]Column{
				"email": {Identifier: "email"},
			}},
		},
		{
			name:    "a second email column is a trait, not a second identifier",
			columns: []string{"email", "Email address", "#"},
			want:    Mapping{Columns: map[string]Column{"email": {Identifier: "email"}, "Email address": {Trait: "email_address"}}},
		},
		{
			name:    "not an identity trait of this workspace: a trait",
			columns: []string{"email", "loyalty_id"},
			want:    Mapping{Columns: map[string]Column{"email": {Identifier: "email"}, "loyalty_id": {Trait: "loyalty_id"}}},
		},
		{
			name:    "nobody in the file",
			columns: []string{"Name", "City"},
			err:     `no column of the file ("Name", "City") says who each row is: name one of them user_id, email, phone, customer_number`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := GuessMapping(Header{Columns: tt.columns}, traits, tt.event)
			if tt.err != "" {
				var me *MappingError
				if !errors.As(err, &me) || !strings.Contains(me.Errors[0].Reason, tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}
