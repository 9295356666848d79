package audit

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/guard"
)

// maxCellRunes bounds one table cell; longer values are cut with "…".
const maxCellRunes = 200

// tableTimeLayout is the time column's format.
const tableTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// WriteTable writes recs to w as an aligned, human-readable table with the
// columns TIME, DECISION, USER, METHOD, TARGET and REASON (the reason
// followed by the error, if any). Every cell is made safe for a terminal:
// control characters (including tab, newline, escape and C1 controls),
// invisible formatting characters such as bidirectional overrides, and
// invalid UTF-8 are shown as \xNN or \uNNNN escapes, so a record cannot
// forge table rows or send terminal escape sequences. Empty cells show "-".
func WriteTable(w io.Writer, recs []guard.Record) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if _, err := io.WriteString(tw, "TIME\tDECISION\tUSER\tMETHOD\tTARGET\tREASON\n"); err != nil {
		return fmt.Errorf("audit: write table: %w", err)
	}
	for i := range recs {
		r := &recs[i]
		reason := r.Reason
		if r.Error != "" {
			if reason != "" {
				reason += "; "
			}
			reason += "error: " + r.Error
		}
		ts := "-"
		if !r.Time.IsZero() {
			ts = r.Time.UTC().Format(tableTimeLayout)
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			ts, cell(string(r.Decision)), cell(r.Subject), cell(r.Method), cell(r.Target), cell(reason))
		if err != nil {
			return fmt.Errorf("audit: write table: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("audit: write table: %w", err)
	}
	return nil
}

// cell returns s made safe for one table cell (see WriteTable).
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if safeASCII(s) && len(s) <= maxCellRunes {
		return s
	}
	var b strings.Builder
	runes := 0
	for i := 0; i < len(s); {
		if runes == maxCellRunes {
			b.WriteString("…")
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && (r < 0x20 || r == 0x7f):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r != ' ' && !unicode.IsGraphic(r):
			// C1 controls, format characters (bidi overrides, zero-width
			// characters), line and paragraph separators, private use.
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
		runes++
	}
	return b.String()
}

// safeASCII reports whether s is printable ASCII only.
func safeASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
