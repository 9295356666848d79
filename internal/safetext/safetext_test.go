package safetext

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"bob":                  "bob",
		"bob\nALLOWED":         "bob?ALLOWED",
		"\x1b[2Jx":             "?[2Jx",
		"tab\there\r":          "tab?here?",
		"caf\u00e9 \u0085next": "café ?next",
		"\x7f":                 "?",
	} {
		if got := Printable(in, 0); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Printable("abcdef", 3); got != "abc…" {
		t.Errorf("bounded = %q", got)
	}
}
