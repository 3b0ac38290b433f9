package bench

import (
	"strconv"
	"time"
)

// generator writes Segment-format records about a fixed population of
// people, the way a shop's website sends them: one identify in ten (with an
// email), two page views, seven track calls, each with a userId and an
// anonymousId, so that identity resolution links three identifiers per
// person and most records update an existing profile. Records are a pure
// function of their sequence number; messageIds are unique within a run.
type generator struct {
	// prefix makes messageIds unique across runs and workloads.
	prefix string
	// users is the size of the population records are about.
	users int
	// ts is the client timestamp every record carries.
	ts string
}

func newGenerator(prefix string, users int, now time.Time) *generator {
	return &generator{prefix: prefix, users: users, ts: now.UTC().Format(time.RFC3339Nano)}
}

// userOf spreads sequence numbers over the population (splitmix64), so that
// concurrent clients rarely write about the same person at the same time.
func (g *generator) userOf(seq int64) int {
	z := uint64(seq) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z % uint64(g.users))
}

// appendRecord appends record seq, about user, as one JSON object. kind
// forces the type ("" picks it from seq).
func (g *generator) appendRecord(b []byte, seq int64, user int, kind string) []byte {
	u := strconv.Itoa(user)
	if kind == "" {
		switch seq % 10 {
		case 0:
			kind = "identify"
		case 1, 2:
			kind = "page"
		default:
			kind = "track"
		}
	}
	b = append(b, `{"type":"`...)
	b = append(b, kind...)
	b = append(b, `","messageId":"`...)
	b = append(b, g.prefix...)
	b = append(b, '-')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","userId":"u`...)
	b = append(b, u...)
	b = append(b, `","anonymousId":"a`...)
	b = append(b, u...)
	b = append(b, '"')
	product := strconv.FormatInt(seq%500, 10)
	switch kind {
	case "identify":
		b = append(b, `,"traits":{"email":"user`...)
		b = append(b, u...)
		b = append(b, `@example.com","first_name":"Ana","last_name":"Martin","plan":"pro","city":"Lyon"}`...)
	case "page":
		b = append(b, `,"name":"Product","properties":{"path":"/p/`...)
		b = append(b, product...)
		b = append(b, `","url":"https://shop.example/p/`...)
		b = append(b, product...)
		b = append(b, `","title":"Running shoes","referrer":"https://www.google.com/"}`...)
	default:
		b = append(b, `,"event":"Product Viewed","properties":{"product_id":"p`...)
		b = append(b, product...)
		b = append(b, `","sku":"SKU-`...)
		b = append(b, product...)
		b = append(b, `","category":"shoes","name":"Running shoes","brand":"Parcours","price":89.9,"currency":"EUR","quantity":1}`...)
	}
	b = append(b, `,"context":{"ip":"203.0.113.7","locale":"fr-FR","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36","library":{"name":"analytics.js","version":"4.1.0"},"page":{"path":"/p/`...)
	b = append(b, product...)
	b = append(b, `","url":"https://shop.example/p/`...)
	b = append(b, product...)
	b = append(b, `"}},"timestamp":"`...)
	b = append(b, g.ts...)
	b = append(b, `"}`...)
	return b
}

// batch returns a /v1/batch body holding records first..first+n-1.
func (g *generator) batch(first int64, n int) []byte {
	b := make([]byte, 0, n*700+64)
	b = append(b, `{"batch":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		seq := first + int64(i)
		b = g.appendRecord(b, seq, g.userOf(seq), "")
	}
	b = append(b, `],"sentAt":"`...)
	b = append(b, g.ts...)
	b = append(b, `"}`...)
	return b
}
