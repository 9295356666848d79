package authz

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzMatch checks the glob matcher against an oracle: the same pattern
// as a regular expression ('*' → ".*", everything else literal).
func FuzzMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"tools:call:*", "tools:call:query"}, {"tools:call:github__*", "tools:call:github__x"}, {"*", ""},
		{"a*b*c", "aXbYc"}, {"a*b*c", "abcb"}, {"**", "x"}, {"resources:read:file:///public/*", "resources:read:file:///public/../etc"},
		{"a\\*", "a\\b"}, {"é*", "éa"}, {"*.*", "a.b"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 || !utf8.ValidString(pattern) || !utf8.ValidString(s) {
			return // beyond the oracle: slow, or not text to a regexp
		}
		parts := strings.Split(pattern, "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		oracle := regexp.MustCompile(`^(?s:` + strings.Join(parts, ".*") + `)$`)
		if got, want := Match(pattern, s), oracle.MatchString(s); got != want {
			t.Fatalf("Match(%q, %q) = %v, regexp says %v", pattern, s, got, want)
		}
	})
}
