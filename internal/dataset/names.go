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
	if utf8.ValidString(s) && strings.IndexFunc(s, hidden) < 0 {
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
		case hidden(r):
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

// hidden reports characters that change how a name looks without being
// seen: control characters, and the bidirectional overrides that can make
// "gpj.exe" read as "exe.jpg".
func hidden(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}
