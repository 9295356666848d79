// Package safetext makes untrusted text safe to echo to a terminal or a
// caller: bounded, and without control characters.
package safetext

import "strings"

// Printable returns s truncated to max bytes (0 means no bound; an ellipsis
// marks a cut) with every C0/C1 control character, DEL included, replaced by
// '?', so that text from a caller cannot move a cursor, clear a screen or
// start a new line.
func Printable(s string, max int) string {
	if max > 0 && len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
