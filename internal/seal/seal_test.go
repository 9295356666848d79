package seal

import (
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	b, _ := New(secret, "use A", 200)
	v, err := b.Seal([]byte("hello"), []byte("cookie:a"))
	if err != nil || strings.Contains(v, "hello") {
		t.Fatalf("%q %v", v, err)
	}
	if p, ok := b.Open(v, []byte("cookie:a")); !ok || string(p) != "hello" {
		t.Fatal("round trip failed")
	}
	other, _ := New(secret, "use B", 200)
	tampered := v[:len(v)-2] + "AA"
	for name, ok := range map[string]bool{
		"other aad": func() bool { _, ok := b.Open(v, []byte("cookie:b")); return ok }(),
		"other use": func() bool { _, ok := other.Open(v, []byte("cookie:a")); return ok }(),
		"tampered":  func() bool { _, ok := b.Open(tampered, []byte("cookie:a")); return ok }(),
		"empty":     func() bool { _, ok := b.Open("", nil); return ok }(),
		"garbage":   func() bool { _, ok := b.Open("!!!", nil); return ok }(),
	} {
		if ok {
			t.Errorf("%s opened", name)
		}
	}
	if _, err := b.Seal(make([]byte, 500), nil); err == nil {
		t.Fatal("an over-long value was sealed")
	}
}
