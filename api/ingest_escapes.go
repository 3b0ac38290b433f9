package api

import "bytes"

// storableEscapes rewrites the JSON escapes PostgreSQL refuses to store as
// \ufffd: \u0000 (jsonb and text hold no NUL) and a surrogate escape that
// is not half of a pair (\ud800 alone is not a character; json refuses
// it). Go's decoder already reads a lone surrogate as U+FFFD, so the record
// means the same either way, and it is stored instead of answering 500.
// Escapes are read in order, so `\\u0000` (a backslash, then text) stays.
func storableEscapes(body []byte) []byte {
	if !bytes.Contains(body, []byte(`\u`)) {
		return body
	}
	var out []byte // nil until something changes
	last := 0
	replace := func(from, to int) {
		out = append(append(out, body[last:from]...), `\ufffd`...)
		last = to
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if i+1 >= len(body) {
			break
		}
		r, ok := hex4(body, i)
		if !ok {
			i++ // an escape of one character (\", \\, \n, ...)
			continue
		}
		switch {
		case r == 0:
			replace(i, i+6)
		case r >= 0xd800 && r <= 0xdbff: // high half: a low half must follow
			if low, ok := hex4(body, i+6); ok && low >= 0xdc00 && low <= 0xdfff {
				i += 11
				continue
			}
			replace(i, i+6)
		case r >= 0xdc00 && r <= 0xdfff: // a low half alone
			replace(i, i+6)
		}
		i += 5
	}
	if out == nil {
		return body
	}
	return append(out, body[last:]...)
}

// hex4 reads the escape \uXXXX at body[i:], if there is one.
func hex4(body []byte, i int) (rune, bool) {
	if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range body[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
