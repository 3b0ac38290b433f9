package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/events"
)

func TestCorrectTimestamp(t *testing.T) {
	t.Parallel()
	recv := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		original, sent time.Time
		want           time.Time
	}{
		{"no times: received", time.Time{}, time.Time{}, recv},
		{"device clock 1h ahead, sent 10s after", recv.Add(time.Hour - 10*time.Second), recv.Add(time.Hour), recv.Add(-10 * time.Second)},
		{"device clock behind", recv.Add(-2 * time.Hour), recv.Add(-2*time.Hour + 3*time.Second), recv.Add(-3 * time.Second)},
		{"no sentAt: trusted", recv.Add(-24 * time.Hour), time.Time{}, recv.Add(-24 * time.Hour)},
		{"future without sentAt: clamped", recv.Add(48 * time.Hour), time.Time{}, recv},
		{"sentAt before timestamp (bad client): clamped", recv.Add(time.Hour), recv, recv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := events.CorrectTimestamp(tt.original, tt.sent, recv); !got.Equal(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseBatchMergesTheEnvelopeAndKeepsGoodRecords(t *testing.T) {
	t.Parallel()
	body := `{"batch":[
		{"type":"track","userId":42,"event":"A","context":{"ip":"1.2.3.4"}},
		{"type":"track","userId":"u"},
		{"type":"identify","anonymousId":"a","traits":{"email":"x@y.z"}}
	],"context":{"library":{"name":"analytics-go"},"ip":"9.9.9.9"},"sentAt":"2026-11-29T12:00:00Z","writeKey":"k"}`
	msgs, rejected, key, err := events.ParseBatch([]byte(body), time.Date(2026, 11, 29, 12, 0, 1, 0, time.UTC))
	if err != nil || key != "k" {
		t.Fatalf("err %v key %q", err, key)
	}
	if len(msgs) != 2 || len(rejected) != 1 || rejected[0].Err.Index != 1 || rejected[0].Err.Field != "event" {
		t.Fatalf("msgs %d rejected %+v", len(msgs), rejected)
	}
	if msgs[0].UserID != "42" || msgs[0].Context["ip"] != "1.2.3.4" || msgs[0].Context["library"] == nil {
		t.Fatalf("item context not merged over the batch's: %v (userId %q)", msgs[0].Context, msgs[0].UserID)
	}
	if !strings.HasPrefix(msgs[1].MessageID, "parcours-") {
		t.Fatalf("missing messageId not generated: %q", msgs[1].MessageID)
	}
}

func TestParseSingleRejectsWithAFieldAndReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ, body, field string
	}{
		{"track", `{"userId":"u"}`, "event"},
		{"track", `{"event":"E"}`, "userId"},
		{"alias", `{"userId":"u"}`, "previousId"},
		{"group", `{"userId":"u"}`, "groupId"},
		{"track", `{"type":"identify","userId":"u"}`, "type"},
		{"track", `{"userId":"u","event":"E","timestamp":"yesterday"}`, "timestamp"},
		{"track", `{"userId":{"id":1},"event":"E"}`, "userId"},
		{"track", `[1,2]`, "(record)"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			_, err := events.ParseSingle([]byte(tt.body), tt.typ, time.Now())
			var pe *events.Error
			if !errors.As(err, &pe) || pe.Field != tt.field || pe.Reason == "" || pe.Status != 400 {
				t.Fatalf("error %v, want a 400 on field %s", err, tt.field)
			}
		})
	}
}

func FuzzParseBatchNeverPanics(f *testing.F) {
	f.Add(`{"batch":[{"type":"track","userId":"u","event":"E"}]}`)
	f.Add(`{"batch":[{"type":"alias","userId":1,"previousId":2,"timestamp":"2026-01-01"}],"sentAt":"x"}`)
	f.Add(`{"batch":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		msgs, rejected, _, err := events.ParseBatch([]byte(body), time.Now())
		if err == nil && len(msgs)+len(rejected) == 0 {
			t.Fatal("accepted an empty batch")
		}
		for _, m := range msgs {
			if m.MessageID == "" || (m.UserID == "" && m.AnonymousID == "") {
				t.Fatalf("invalid message accepted: %+v", m)
			}
		}
	})
}
