package atmswitch

import (
	"unicode"
	"unicode/utf8"

	"github.com/softatm/softatm"
)

// checkName refuses a free-text name (a holder's name) that could do harm
// where it is shown or stored: text that is not UTF-8 or holds a NUL
// (PostgreSQL refuses both: a 500 before this check), control characters
// and line or paragraph separators (they forge log lines and break
// receipts), bidirectional controls (U+202A-U+202E and U+2066-U+2069
// reorder what the teller reads, and the marks U+061C, U+200E, U+200F), and
// markup (< and >: the name is shown on the kiosk's and finance pages). A
// refusal is 422 invalid_name; nothing is sent to the bank.
func checkName(field, name string) error {
	if !utf8.ValidString(name) {
		return softatm.Errorf(softatm.EInvalidName, "%s is not valid UTF-8", field)
	}
	for _, r := range name {
		if badNameRune(r) {
			return softatm.Errorf(softatm.EInvalidName, "%s holds a character not allowed in a name (U+%04X)", field, r)
		}
	}
	return nil
}

func badNameRune(r rune) bool {
	switch {
	case unicode.IsControl(r): // C0 (NUL included), DEL, C1
		return true
	case r == '\u2028' || r == '\u2029': // line and paragraph separators
		return true
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
		return true // bidi embeddings, overrides and isolates
	case r == '\u061C' || r == '\u200E' || r == '\u200F':
		return true // bidi marks
	case r == '<' || r == '>':
		return true
	}
	return false
}
