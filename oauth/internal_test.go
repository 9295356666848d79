package oauth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestSealer(t *testing.T) {
	k, err := newSealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	// An ID long enough that random ciphertext cannot contain it by
	// chance (a two-letter one did, in about 2% of runs).
	const id = "transaction-id-visible-if-not-encrypted"
	v, err := k.seal(purposeTxn, txn{ID: id, CSRF: "c"}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got txn
	if err := k.open(purposeTxn, v, now, &got); err != nil || got.ID != id {
		t.Fatalf("open: %v %+v", err, got)
	}
	if strings.Contains(v, id) || strings.Contains(v, base64.RawURLEncoding.EncodeToString([]byte(`"` + id))[:20]) {
		t.Fatal("the sealed value is not encrypted")
	}
	other, _ := newSealer([]byte("another key of thirty-two bytes!"))
	raw := []byte(v)
	raw[len(raw)/2] ^= 1
	for name, open := range map[string]func() error{
		"other purpose": func() error { return k.open(purposeSession, v, now, &got) },
		"expired":       func() error { return k.open(purposeTxn, v, now.Add(time.Minute), &got) },
		"other key":     func() error { return other.open(purposeTxn, v, now, &got) },
		"tampered":      func() error { return k.open(purposeTxn, string(raw), now, &got) },
		"empty":         func() error { return k.open(purposeTxn, "", now, &got) },
		"oversized":     func() error { return k.open(purposeTxn, strings.Repeat("A", maxCookie+1), now, &got) },
	} {
		if open() == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if _, err := k.seal(purposeTxn, strings.Repeat("x", maxCookie), now); err == nil {
		t.Fatal("a value too large for a cookie was sealed")
	}
	if k.codeJTI("f1") != k.codeJTI("f1") || k.codeJTI("f1") == k.codeJTI("f2") || k.codeJTI("f1") == other.codeJTI("f1") || len(k.codeJTI("f1")) != 32 {
		t.Fatal("codeJTI is not a keyed, deterministic 128-bit value")
	}
}

func TestCacheTTL(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                         5 * time.Minute,
		"max-age=600":              10 * time.Minute,
		"public, max-age=10":       time.Minute,
		"max-age=999999999999":     24 * time.Hour,
		"max-age=-5":               5 * time.Minute,
		"max-age=abc":              5 * time.Minute,
		"no-store":                 time.Minute,
		"max-age=3600, no-cache":   time.Minute,
		`MAX-AGE="7200"`:           2 * time.Hour,
		"s-maxage=100, max-age=90": 90 * time.Second,
	} {
		if got := cacheTTL(cc); got != want {
			t.Errorf("cacheTTL(%q) = %v, want %v", cc, got, want)
		}
	}
}

func TestCheckCIMDURL(t *testing.T) {
	for id, ok := range map[string]bool{
		"https://app.example/client.json":          true,
		"https://app.example:8443/a/b/meta?v=1":    true,
		"http://app.example/client.json":           false,
		"https://app.example":                      false,
		"https://app.example/":                     false,
		"https://user@app.example/client.json":     false,
		"https://app.example/client.json#x":        false,
		"https://app.example/a/../client.json":     false,
		"https://app.example/./client.json":        false,
		"https:///client.json":                     false,
		"https:app.example/client.json":            false,
		"ftp://app.example/client.json":            false,
		"https://app.example/client.json#":         false,
		"https://app.example/%2e%2e/client.json":   false,
		"https://[::1]:4443/client.json":           true, // refused later, when dialed
		"https://app.example/a/b/c/d/client.json":  true,
		"https://app.example/client.json?x=1&y=..": true,
	} {
		if got := checkCIMDURL(id) == nil; got != ok {
			t.Errorf("checkCIMDURL(%q) ok = %v, want %v", id, got, ok)
		}
	}
}

func TestRedirectAllowed(t *testing.T) {
	reg := []string{"http://127.0.0.1:9999/cb", "http://[::1]/cb", "https://app.example/cb?x=1", "http://localhost:3000/cb"}
	for uri, ok := range map[string]bool{
		"http://127.0.0.1:9999/cb":       true,
		"http://127.0.0.1:1234/cb":       true, // any port on a loopback IP
		"http://127.0.0.1/cb":            true,
		"http://[::1]:5555/cb":           true,
		"https://app.example/cb?x=1":     true,
		"http://localhost:3000/cb":       true,
		"http://localhost:3001/cb":       false, // localhost is matched exactly
		"http://127.0.0.1:1234/cb/":      false,
		"http://127.0.0.1:1234/cb?x=1":   false,
		"http://127.0.0.1:1234/cb#f":     false,
		"http://127.0.0.2:9999/cb":       false,
		"https://127.0.0.1:9999/cb":      false,
		"https://app.example/cb":         false,
		"https://app.example/cb?x=1&y=2": false,
		"https://app.example:443/cb?x=1": false,
		"http://user@127.0.0.1:9999/cb":  false,
	} {
		if got := redirectAllowed(reg, uri); got != ok {
			t.Errorf("redirectAllowed(%q) = %v, want %v", uri, got, ok)
		}
	}
}

func TestCheckRedirectURI(t *testing.T) {
	for uri, ok := range map[string]bool{
		"https://app.example/cb":     true,
		"http://127.0.0.1:9/cb":      true,
		"http://[::1]:9/cb":          true,
		"http://localhost/cb":        true,
		"http://app.example/cb":      false,
		"http://127.0.0.1.nip.io/cb": false,
		"https://app.example/cb#":    false,
		"javascript:alert(1)":        false,
		"myapp://cb":                 false,
		"//app.example/cb":           false,
		"https://" + strings.Repeat("a", maxRedirectURI) + ".example/": false,
	} {
		if got := CheckRedirectURI(uri) == nil; got != ok {
			t.Errorf("CheckRedirectURI(%q) ok = %v, want %v", uri, got, ok)
		}
	}
}

func TestAttemptCounterIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newAttemptCounter(3, func() time.Time { return now })
	until := now.Add(time.Minute)
	c.add("a", until)
	c.add("a", until)
	for _, id := range []string{"b", "c", "d"} {
		c.add(id, until)
	}
	if len(c.items) != 3 || c.get("a") != 0 || c.get("d") != 1 {
		t.Fatalf("items = %d, a = %d, d = %d", len(c.items), c.get("a"), c.get("d"))
	}
	now = now.Add(2 * time.Minute)
	if c.get("d") != 0 {
		t.Fatal("an expired count is still read")
	}
}

func TestDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"Claude":                   "Claude",
		"  VS\tCode \n Insiders  ": "VS Code Insiders",
		"Good\u202eevil":           "Goodevil",
		"zero\u200bwidth":          "zerowidth",
		"Ärger 日本":                 "Ärger 日本",
	} {
		if got, err := displayName(in); err != nil || got != want {
			t.Errorf("displayName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"\xff", strings.Repeat("x", maxClientName+1)} {
		if _, err := displayName(bad); err == nil {
			t.Errorf("displayName(%q) accepted", bad)
		}
	}
}

func TestValidScopeToken(t *testing.T) {
	for s, ok := range map[string]bool{"mcp:read": true, "a/b.c-d_e": true, "": false, "a b": false, `a"b`: false, `a\b`: false, "é": false} {
		if validScopeToken(s) != ok {
			t.Errorf("validScopeToken(%q) != %v", s, ok)
		}
	}
}
