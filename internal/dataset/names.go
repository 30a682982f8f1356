package dataset

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// displayName returns a file or folder name as valid, printable UTF-8 for
// reports, labels and tf.Example file names, and whether it had to be
// escaped. Invalid bytes become \xNN and control characters \xNN or \uNNNN,
// so two different odd names stay different and JSON never receives bytes
// it would silently replace.
func displayName(s string) (string, bool) {
	if utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s, false
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x100 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String(), true
}
