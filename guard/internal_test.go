package guard

import "testing"

func TestLockoutSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                 "192.0.2.7",
		"2001:db8:1:2:aaaa::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::9": "2001:db8:1:2::/64",
		"::ffff:192.0.2.7":          "::ffff:192.0.2.7",
		"not-an-ip":                 "not-an-ip",
	} {
		if got := lockoutSource(in); got != want {
			t.Errorf("lockoutSource(%q) = %q, want %q", in, got, want)
		}
	}
}
