package totp_test

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/authn/totp"
)

// RFC 6238 appendix B: the SHA-1 secret "12345678901234567890" gives
// 94287082 at 59 s; the 6-digit code is its last six digits.
func TestRFC6238Vector(t *testing.T) {
	code, err := totp.GenerateCode([]byte("12345678901234567890"), time.Unix(59, 0))
	if err != nil || code != "287082" {
		t.Fatalf("code = %q, %v; want 287082", code, err)
	}
	code, _ = totp.GenerateCode([]byte("12345678901234567890"), time.Unix(1111111109, 0))
	if code != "081804" {
		t.Fatalf("code = %q; want 081804", code)
	}
}

func TestEnrollAndValidate(t *testing.T) {
	e, err := totp.Enroll("mcpguard", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Secret) != 20 {
		t.Fatalf("secret of %d bytes", len(e.Secret))
	}
	u, err := url.Parse(e.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") == "" || u.Query().Get("issuer") != "mcpguard" {
		t.Fatalf("URI %q", e.URI)
	}
	now := time.Unix(1_800_000_015, 0)
	code, _ := totp.GenerateCode(e.Secret, now)
	for _, tc := range []struct {
		at   time.Time
		ok   bool
		step int64
	}{
		{now, true, now.Unix() / 30},
		{now.Add(30 * time.Second), true, now.Unix() / 30},
		{now.Add(-30 * time.Second), true, now.Unix() / 30},
		{now.Add(90 * time.Second), false, 0},
		{now.Add(-90 * time.Second), false, 0},
	} {
		step, ok := totp.Validate(e.Secret, code, tc.at)
		if ok != tc.ok || step != tc.step {
			t.Errorf("at %v: (%d, %v), want (%d, %v)", tc.at.Sub(now), step, ok, tc.step, tc.ok)
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "12345a", "１２３４５６", code + " x"} {
		if _, ok := totp.Validate(e.Secret, bad, now); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, ok := totp.Validate(e.Secret, " "+code+" ", now); !ok {
		t.Error("surrounding spaces refused")
	}
	other, _ := totp.Enroll("mcpguard", "bob")
	if _, ok := totp.Validate(other.Secret, code, now); ok {
		t.Error("a code for another secret accepted")
	}
}

func TestBackupCodes(t *testing.T) {
	codes, hashes, err := totp.NewBackupCodes(10)
	if err != nil || len(codes) != 10 || len(hashes) != 10 {
		t.Fatal(codes, err)
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 11 || c[5] != '-' || strings.ContainsAny(c, "01ilo") || seen[c] {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
		variants := []string{c, strings.ToUpper(c), strings.ReplaceAll(c, "-", " "), " " + strings.ReplaceAll(c, "-", "") + " "}
		for _, v := range variants {
			if !bytes.Equal(totp.HashBackupCode(v), hashes[i]) {
				t.Errorf("%q does not match %q", v, c)
			}
		}
	}
	if bytes.Equal(totp.HashBackupCode(codes[0]), totp.HashBackupCode(codes[1])) {
		t.Fatal("two codes share a digest")
	}
	if _, _, err := totp.NewBackupCodes(0); err == nil {
		t.Fatal("zero codes accepted")
	}
}

func TestQR(t *testing.T) {
	a, err := totp.QR("otpauth://totp/mcpguard:alice?secret=ABC&issuer=mcpguard")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := totp.QR("otpauth://totp/mcpguard:alice?secret=ABC&issuer=mcpguard")
	c, _ := totp.QR("otpauth://totp/mcpguard:bob?secret=XYZ&issuer=mcpguard")
	if a != b || a == c {
		t.Fatal("QR is not a deterministic function of the URI")
	}
	lines := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	width := utf8.RuneCountInString(lines[0])
	for _, l := range lines {
		if utf8.RuneCountInString(l) != width {
			t.Fatal("ragged QR rows")
		}
	}
	// Two modules per row: a square code is about twice as wide as high.
	if h := len(lines); width < 2*h-2 || width > 2*h+2 {
		t.Fatalf("%d columns by %d rows is not a square code", width, h)
	}
	// The quiet zone: the first row and the first column are all light.
	if strings.Trim(lines[0], "█") != "" {
		t.Fatalf("no quiet zone on top: %q", lines[0])
	}
	for _, l := range lines {
		if r, _ := utf8.DecodeRuneInString(l); r != '█' && r != '▀' {
			t.Fatalf("no quiet zone on the left: %q", l)
		}
	}
	if _, err := totp.QR(strings.Repeat("x", 3000)); err == nil {
		t.Fatal("an over-long URI was encoded")
	}
}
