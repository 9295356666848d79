package admin

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestLoginLimiterWindowAndLockout(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginLimiter(func() time.Time { return now })
	ctx := context.Background()
	for i := range loginMaxFailures - 1 {
		if _, locked := l.Failure(ctx, "a"); locked {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	// Failures spread beyond the window do not add up.
	now = now.Add(loginWindow)
	if _, locked := l.Failure(ctx, "a"); locked {
		t.Fatal("failures outside the window counted")
	}
	for range loginMaxFailures - 1 {
		l.Failure(ctx, "a")
	}
	if wait, locked := l.Locked(ctx, "a"); !locked || wait != loginLockout {
		t.Fatalf("Locked = %v, %v; want locked for %v", wait, locked, loginLockout)
	}
	if _, locked := l.Locked(ctx, "b"); locked {
		t.Fatal("another source is locked")
	}
	now = now.Add(loginLockout)
	if _, locked := l.Locked(ctx, "a"); locked {
		t.Fatal("still locked after the lockout")
	}
}

func TestLoginLimiterBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginLimiter(func() time.Time { return now })
	l.maxSources = 100
	ctx := context.Background()
	for i := range 1000 {
		now = now.Add(time.Millisecond)
		l.Failure(ctx, fmt.Sprint("src", i))
	}
	if len(l.sources) > l.maxSources {
		t.Fatalf("tracking %d sources, bound %d", len(l.sources), l.maxSources)
	}
	// The newest source survived eviction; the oldest did not.
	if l.sources["src999"] == nil || l.sources["src0"] != nil {
		t.Fatal("eviction did not drop the oldest source")
	}
}

func TestSealRoundTripAndBinding(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	k, err := newSealer(key, "a")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	v, err := k.seal(&session{Subject: "root", Roles: []string{"admin"}, Expires: now.Add(time.Hour).Unix(), CSRF: "t"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := k.open(v, now)
	if err != nil || s.Subject != "root" || s.Roles[0] != "admin" {
		t.Fatalf("open = %+v, %v", s, err)
	}
	// Sealed for cookie "a", refused as cookie "b" under the same key.
	other, _ := newSealer(key, "b")
	if _, err := other.open(v, now); err == nil {
		t.Fatal("a value sealed for one cookie opened as another")
	}
	if _, err := k.open(v, now.Add(time.Hour)); err == nil {
		t.Fatal("expired session opened")
	}
	// Two seals of one session differ (random nonce).
	v2, _ := k.seal(&session{Subject: "root", Roles: []string{"admin"}, Expires: now.Add(time.Hour).Unix(), CSRF: "t"})
	if v2 == v {
		t.Fatal("sealing is deterministic")
	}
}

func TestDisplay(t *testing.T) {
	for in, want := range map[string]string{
		"plain":              "plain",
		"a\nb\x1b[31m":       "a\uFFFDb\uFFFD[31m",
		"rtl\u202eevil":      "rtl\uFFFDevil",
		"zero\u200bwidth":    "zero\uFFFDwidth",
		"bad\xffutf8":        "bad\uFFFDutf8",
		"<b>kept for escape": "<b>kept for escape",
	} {
		if got := display(in); got != want {
			t.Errorf("display(%q) = %q, want %q", in, got, want)
		}
	}
	long := display(string(make([]rune, 500)))
	if n := len([]rune(long)); n != maxCellRunes+1 {
		t.Errorf("display of 500 runes has %d runes, want %d and an ellipsis", n, maxCellRunes+1)
	}
}
