package channel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"
)

// Limits of one v3 mail/send request (SendGrid's, with margins).
const (
	// MaxPersonalizations is SendGrid's cap on personalizations (and on
	// recipients) per request.
	MaxPersonalizations = 1000
	// maxSubstitutionBytes per personalization: SendGrid allows 50,000.
	maxSubstitutionBytes = 40_000
	// maxRequestBytes: SendGrid refuses messages above 30 MB.
	maxRequestBytes = 20 << 20
	// maxEdits bounds the byte diff of one body against its group's first:
	// a name or a short conditional paragraph take a few dozen.
	maxEdits = 512
	// diffRounds bounds the groups built by diffing; what is left after that
	// is grouped by identical bodies only.
	diffRounds = 4
)

// BatchMessage is one message of a batch: the rendered content for one
// address.
type BatchMessage struct {
	To                  string
	Subject, HTML, Text string
	// CustomArgs come back on SendGrid's event webhook: ids only.
	CustomArgs map[string]string
	// UnsubscribeURL, when set, goes in List-Unsubscribe (RFC 8058).
	UnsubscribeURL string
	// Links are strings of this message that differ for everyone by
	// construction (its signed unsubscribe and preference links): they are
	// lifted out of the bodies into substitutions before the bodies are
	// compared, in the same order for every message of a batch.
	Links []string
}

// batchRequest is one planned mail/send request: members are indexes into
// the batch's messages, written as shared parts plus substitutions.
type batchRequest struct {
	members []int
	html    contentPlan
	text    contentPlan
	// lifted[m] are the link substitutions of member m.
	lifted map[int]map[string]string
}

// contentPlan is one content type of a request: parts around keys, and each
// member's value for each key.
type contentPlan struct {
	parts  []string
	keys   []string
	values map[int][]string // member → values, one per key
}

func (c contentPlan) content() string {
	var b strings.Builder
	for i, p := range c.parts {
		b.WriteString(p)
		if i < len(c.keys) {
			b.WriteString(c.keys[i])
		}
	}
	return b.String()
}

func (c contentPlan) size(member int) int {
	n := 0
	for i, v := range c.values[member] {
		n += len(c.keys[i]) + len(v)
	}
	return n
}

// planBatch groups msgs into as few requests as SendGrid's limits allow.
// Messages whose bodies differ only in places (a name, a link) share a
// request through substitutions; a body that shares too little with the
// others gets a request of its own.
func planBatch(msgs []BatchMessage) []*batchRequest {
	nonce := newNonce(msgs)
	lifted, lifts := lift(msgs, nonce)
	var out []*batchRequest
	left := make([]int, len(msgs))
	for i := range left {
		left[i] = i
	}
	poor := 0 // rounds in a row that grouped few of what was left
	for round := 0; len(left) > 0; round++ {
		var group, rest []int
		var html, text contentPlan
		if round < diffRounds && poor < 2 {
			group, rest, html, text = splitGroup(lifted, lifts, left, nonce, len(out))
			// Bodies that share this little are not worth diffing again
			// (one odd first body is not enough to give up).
			if len(group)*10 < len(left) && len(left) >= 20 {
				poor++
			} else {
				poor = 0
			}
		} else {
			group, rest, html, text = sameGroup(msgs, left)
			lifts = nil
		}
		for _, r := range chunk(msgs, lifts, group, html, text) {
			r.lifted = map[int]map[string]string{}
			for _, m := range r.members {
				if lifts != nil {
					r.lifted[m] = lifts[m]
				}
			}
			out = append(out, r)
		}
		left = rest
	}
	return out
}

// lift replaces each message's links in its bodies with keys the same for
// every message (-pcs<nonce>l<j>-), and returns the bodies so written with
// each message's substitutions for those keys. Exact: no key occurs in a
// message (newNonce), so the substitutions give back the bodies as they
// were; that is checked, and a message that does not come back keeps its
// bodies whole.
func lift(msgs []BatchMessage, nonce string) ([]BatchMessage, []map[string]string) {
	out := make([]BatchMessage, len(msgs))
	subs := make([]map[string]string, len(msgs))
	for i, m := range msgs {
		out[i], subs[i] = m, map[string]string{}
		var keys []string
		for j, link := range m.Links {
			if link == "" {
				continue
			}
			key := "-pcs" + nonce + "l" + strconv.Itoa(j) + "-"
			out[i].HTML = strings.ReplaceAll(out[i].HTML, link, key)
			out[i].Text = strings.ReplaceAll(out[i].Text, link, key)
			subs[i][key] = link
			keys = append(keys, key)
		}
		html, text := out[i].HTML, out[i].Text
		for j := len(keys) - 1; j >= 0; j-- {
			html = strings.ReplaceAll(html, keys[j], subs[i][keys[j]])
			text = strings.ReplaceAll(text, keys[j], subs[i][keys[j]])
		}
		if html != m.HTML || text != m.Text {
			out[i], subs[i] = m, map[string]string{}
		}
	}
	return out, subs
}

// splitGroup writes left[0] and whatever it can of the others against it.
// msgs are the lifted messages; a hole's value that took in a lifted key
// gets the member's link back, so that no value holds a key.
func splitGroup(msgs []BatchMessage, lifts []map[string]string, left []int, nonce string, g int) (group, rest []int, html, text contentPlan) {
	htmls := make([]string, len(left))
	texts := make([]string, len(left))
	for i, m := range left {
		htmls[i], texts[i] = msgs[m].HTML, msgs[m].Text
	}
	hs, hin := splitBodies(htmls, maxEdits)
	ts, tin := splitBodies(texts, maxEdits)
	html = contentPlan{parts: hs.parts, keys: keys(nonce, g, 'h', len(hs.parts)-1), values: map[int][]string{}}
	text = contentPlan{parts: ts.parts, keys: keys(nonce, g, 't', len(ts.parts)-1), values: map[int][]string{}}
	for i, m := range left {
		ok := hin[i] && tin[i] &&
			hs.rebuilds(htmls[i], hs.values[i]) && ts.rebuilds(texts[i], ts.values[i])
		if ok {
			html.values[m], text.values[m] = unlift(hs.values[i], lifts[m], nonce), unlift(ts.values[i], lifts[m], nonce)
			ok = html.size(m)+text.size(m)+liftSize(lifts[m]) <= maxSubstitutionBytes
		}
		switch {
		case ok:
			group = append(group, m)
		case i == 0:
			// The holes are too wide even for the first: it goes alone,
			// whole, and the others try again without it.
			html = contentPlan{parts: []string{htmls[0]}, values: map[int][]string{m: nil}}
			text = contentPlan{parts: []string{texts[0]}, values: map[int][]string{m: nil}}
			return []int{m}, left[1:], html, text
		default:
			delete(html.values, m)
			delete(text.values, m)
			rest = append(rest, m)
		}
	}
	return group, rest, html, text
}

// unlift puts a member's links back into values that took in their keys.
func unlift(values []string, subs map[string]string, nonce string) []string {
	var r *strings.Replacer
	for i, v := range values {
		if !strings.Contains(v, "-pcs"+nonce) {
			continue
		}
		if r == nil {
			var pairs []string
			for k, link := range subs {
				pairs = append(pairs, k, link)
			}
			r = strings.NewReplacer(pairs...)
			values = append([]string(nil), values...)
		}
		values[i] = r.Replace(v)
	}
	return values
}

func liftSize(subs map[string]string) int {
	n := 0
	for k, v := range subs {
		n += len(k) + len(v)
	}
	return n
}

// sameGroup takes left[0] and every message with exactly its bodies.
func sameGroup(msgs []BatchMessage, left []int) (group, rest []int, html, text contentPlan) {
	ref := msgs[left[0]]
	html = contentPlan{parts: []string{ref.HTML}, values: map[int][]string{}}
	text = contentPlan{parts: []string{ref.Text}, values: map[int][]string{}}
	for _, m := range left {
		if msgs[m].HTML == ref.HTML && msgs[m].Text == ref.Text {
			group = append(group, m)
			html.values[m], text.values[m] = nil, nil
		} else {
			rest = append(rest, m)
		}
	}
	return group, rest, html, text
}

// chunk cuts a group into requests of at most MaxPersonalizations members
// and maxRequestBytes (estimated).
func chunk(msgs []BatchMessage, lifts []map[string]string, group []int, html, text contentPlan) []*batchRequest {
	base := len(html.content()) + len(text.content()) + 1024
	var out []*batchRequest
	cur := &batchRequest{html: html, text: text}
	size := base
	for _, m := range group {
		// Address, subject, custom args, headers and JSON around them.
		n := html.size(m) + text.size(m) + len(msgs[m].To) + len(msgs[m].Subject) + len(msgs[m].UnsubscribeURL)*2 + 400
		for k, v := range msgs[m].CustomArgs {
			n += len(k) + len(v) + 8
		}
		if lifts != nil {
			n += liftSize(lifts[m])
		}
		if len(cur.members) > 0 && (len(cur.members) >= MaxPersonalizations || size+n > maxRequestBytes) {
			out = append(out, cur)
			cur = &batchRequest{html: html, text: text}
			size = base
		}
		cur.members = append(cur.members, m)
		size += n
	}
	if len(cur.members) > 0 {
		out = append(out, cur)
	}
	return out
}

// keys names n holes of group g: -pcs<nonce><kind><g>x<i>-.
func keys(nonce string, g int, kind byte, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "-pcs" + nonce + string(kind) + strconv.Itoa(g) + "x" + strconv.Itoa(i) + "-"
	}
	return out
}

// newNonce picks a key prefix that appears in no message, so that SendGrid
// replaces only the keys Parcours put there.
func newNonce(msgs []BatchMessage) string {
	for {
		b := make([]byte, 5)
		_, _ = rand.Read(b)
		n := strconv.FormatUint(uint64(b[0])<<32|uint64(b[1])<<24|uint64(b[2])<<16|uint64(b[3])<<8|uint64(b[4]), 36)
		clash := false
		for _, m := range msgs {
			if strings.Contains(m.HTML, n) || strings.Contains(m.Text, n) || strings.Contains(m.Subject, n) {
				clash = true
				break
			}
			for _, l := range m.Links {
				clash = clash || strings.Contains(l, n)
			}
		}
		if !clash {
			return n
		}
	}
}

// body builds the request's JSON for the members keep accepts (nil when
// none is left), with the official client's types.
func (r *batchRequest) body(msgs []BatchMessage, fromEmail, fromName string, keep func(member int) bool) ([]byte, []int, error) {
	msg := mail.NewV3Mail()
	msg.SetFrom(mail.NewEmail(fromName, fromEmail))
	var sent []int
	for _, m := range r.members {
		if keep != nil && !keep(m) {
			continue
		}
		bm := msgs[m]
		p := mail.NewPersonalization()
		p.AddTos(mail.NewEmail("", bm.To))
		p.Subject = bm.Subject
		for k, v := range bm.CustomArgs {
			p.SetCustomArg(k, v)
		}
		if bm.UnsubscribeURL != "" {
			p.SetHeader("List-Unsubscribe", "<"+bm.UnsubscribeURL+">")
			p.SetHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
		}
		for _, c := range []contentPlan{r.text, r.html} {
			for i, k := range c.keys {
				p.SetSubstitution(k, c.values[m][i])
			}
		}
		for k, v := range r.lifted[m] {
			p.SetSubstitution(k, v)
		}
		if msg.Subject == "" {
			msg.Subject = bm.Subject
		}
		msg.AddPersonalizations(p)
		sent = append(sent, m)
	}
	if len(sent) == 0 {
		return nil, nil, nil
	}
	// SendGrid wants text/plain before text/html.
	if t := r.text.content(); t != "" {
		msg.AddContent(mail.NewContent("text/plain", t))
	}
	if h := r.html.content(); h != "" {
		msg.AddContent(mail.NewContent("text/html", h))
	}
	// Not mail.GetRequestBody: HTML-escaping every < and > in JSON would
	// make large requests up to six times larger for nothing.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		return nil, nil, fmt.Errorf("encode mail/send request: %w", err)
	}
	return buf.Bytes(), sent, nil
}

// post sends one request body and classifies the answer as Send does.
func (s *SendGrid) post(ctx context.Context, apiKey, baseURL string, body []byte) (Result, error) {
	if baseURL == "" {
		baseURL = DefaultSendGridURL
	}
	req := sendgrid.GetRequest(apiKey, "/v3/mail/send", strings.TrimRight(baseURL, "/"))
	req.Method = rest.Post
	req.Body = body
	resp, err := (&rest.Client{HTTPClient: s.Client}).SendWithContext(ctx, req)
	if err != nil {
		return Result{}, classifyNetError("sendgrid", err)
	}
	return classifySendGrid(resp, s.now())
}
