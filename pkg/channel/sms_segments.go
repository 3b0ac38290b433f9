package channel

import (
	"strings"
	"unicode/utf16"
)

// SMS encodings.
const (
	EncodingGSM7 = "GSM-7"
	EncodingUCS2 = "UCS-2"
)

// MaxSMSChars is the longest body Twilio accepts (characters; it refuses
// longer ones with error 21617).
const MaxSMSChars = 1600

// gsm7Basic is the GSM 03.38 default alphabet; each character is one
// septet. gsm7Extended characters take two (an escape and the character).
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extended = "^{}\\[~]|€\f"
)

// SMSSegments says how an SMS body is encoded and how many segments (the
// parts carriers deliver and Twilio bills) it takes: GSM-7 when every
// character is in the GSM 03.38 alphabet — 160 septets in one segment, 153
// per segment once concatenated, an extended character (€, [, ...) taking
// two septets that are never split — else UCS-2: 70 UTF-16 units in one
// segment, 67 per segment, a surrogate pair (an emoji) never split. An
// empty body is 0 segments.
func SMSSegments(body string) (segments int, encoding string) {
	if body == "" {
		return 0, EncodingGSM7
	}
	var units []int // size of each unsplittable unit, in septets or UTF-16 units
	encoding = EncodingGSM7
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			units = append(units, 1)
		case strings.ContainsRune(gsm7Extended, r):
			units = append(units, 2)
		default:
			encoding = EncodingUCS2
		}
		if encoding == EncodingUCS2 {
			break
		}
	}
	single, multi := 160, 153
	if encoding == EncodingUCS2 {
		single, multi = 70, 67
		units = units[:0]
		for _, r := range body {
			units = append(units, utf16.RuneLen(r))
		}
	}
	total := 0
	for _, u := range units {
		total += u
	}
	if total <= single {
		return 1, encoding
	}
	segments, used := 1, 0
	for _, u := range units {
		if used+u > multi {
			segments++
			used = 0
		}
		used += u
	}
	return segments, encoding
}
