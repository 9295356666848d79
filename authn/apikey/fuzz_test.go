package apikey

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse accepts exactly the documented format,
// mcp_<16 lowercase hex>_<43 base64url>, and returns the id in it.
func FuzzParse(f *testing.F) {
	key, _, err := Generate()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{key, "", "mcp_", key[:len(key)-1], key + "A", strings.ToUpper(key), strings.Replace(key, "_", "-", 1),
		"mcp_0123456789abcdef_" + strings.Repeat("A", 43), "mcp_0123456789abcdeF_" + strings.Repeat("A", 43), "mcp_0123456789abcdef_" + strings.Repeat("=", 43)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if id != "" {
				t.Fatalf("Parse(%q) failed but returned id %q", s, id)
			}
			return
		}
		if len(s) != KeyLen || !strings.HasPrefix(s, Prefix) || s[len(Prefix)+idLen] != '_' || id != s[len(Prefix):len(Prefix)+idLen] {
			t.Fatalf("Parse(%q) = %q: not the documented format", s, id)
		}
		for _, c := range id {
			if !strings.ContainsRune("0123456789abcdef", c) {
				t.Fatalf("Parse(%q): id %q is not lowercase hex", s, id)
			}
		}
		for _, c := range s[len(Prefix)+idLen+1:] {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c) {
				t.Fatalf("Parse(%q): secret has %q", s, c)
			}
		}
		if !LooksLikeKey(s) {
			t.Fatalf("LooksLikeKey(%q) is false for a key Parse accepts", s)
		}
	})
}
