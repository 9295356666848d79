package totp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/boombuler/barcode/qr"

	"github.com/mcpguard/mcpguard/authn/totp"
)

// rfcSecret is the SHA-1 secret of RFC 6238's test vectors.
var rfcSecret = []byte("12345678901234567890")

// RFC 6238 appendix B, SHA-1: the 8-digit codes' last six digits are the
// 6-digit codes.
func TestRFC6238Vectors(t *testing.T) {
	for unix, want := range map[int64]string{
		59:          "287082", // 94287082
		1111111109:  "081804", // 07081804
		1111111111:  "050471", // 14050471
		1234567890:  "005924", // 89005924
		2000000000:  "279037", // 69279037
		20000000000: "353130", // 65353130
	} {
		at := time.Unix(unix, 0)
		code, err := totp.GenerateCode(rfcSecret, at)
		if err != nil || code != want {
			t.Errorf("GenerateCode at %d = %q, %v; want %q", unix, code, err, want)
		}
		if step, ok := totp.Validate(rfcSecret, want, at); !ok || step != unix/30 {
			t.Errorf("Validate(%q) at %d = %d, %v; want %d, true", want, unix, step, ok, unix/30)
		}
	}
}

// A code is accepted in its own 30-second step and one step either side,
// and nowhere else; Validate says which step it matched.
func TestValidateWindow(t *testing.T) {
	gen := time.Unix(1_800_000_015, 0) // in the middle of a step
	step := gen.Unix() / 30
	code, err := totp.GenerateCode(rfcSecret, gen)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		offset time.Duration
		ok     bool
	}{
		{0, true},
		{30 * time.Second, true},
		{-30 * time.Second, true},
		{44 * time.Second, true},   // last second of the next step
		{-45 * time.Second, true},  // first second of the previous step
		{45 * time.Second, false},  // two steps on
		{-46 * time.Second, false}, // two steps back
		{60 * time.Second, false},
		{-60 * time.Second, false},
		{90 * time.Second, false},
		{-90 * time.Second, false},
	} {
		got, ok := totp.Validate(rfcSecret, code, gen.Add(tc.offset))
		switch {
		case ok != tc.ok:
			t.Errorf("at %+v: ok = %v, want %v", tc.offset, ok, tc.ok)
		case ok && got != step:
			t.Errorf("at %+v: step %d, want %d", tc.offset, got, step)
		case !ok && got != 0:
			t.Errorf("at %+v: refused with step %d, want 0", tc.offset, got)
		}
	}
}

// The step returned lets a caller make codes single-use: the same code
// presented again matches the same step, which the caller has stored.
func TestValidateStepForReplay(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	code, err := totp.GenerateCode(rfcSecret, now)
	if err != nil {
		t.Fatal(err)
	}
	first, ok := totp.Validate(rfcSecret, code, now)
	if !ok {
		t.Fatal("code refused")
	}
	again, ok := totp.Validate(rfcSecret, code, now.Add(20*time.Second))
	if !ok || again > first {
		t.Fatalf("replayed code matched step %d (ok %v) after %d: a caller storing the step could not refuse it", again, ok, first)
	}
	next, _ := totp.GenerateCode(rfcSecret, now.Add(30*time.Second))
	if s, ok := totp.Validate(rfcSecret, next, now.Add(30*time.Second)); !ok || s != first+1 {
		t.Fatalf("next code: step %d, %v; want %d", s, ok, first+1)
	}
}

func TestValidateRefusesMalformedCodes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	code, err := totp.GenerateCode(rfcSecret, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{code, " " + code, code + "  ", "\t" + code + "\n"} {
		if _, valid := totp.Validate(rfcSecret, ok, now); !valid {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{
		"", "      ", code[:5], code + "0", "0" + code, code[:3] + " " + code[3:], code[:3] + "-" + code[3:],
		"+" + code[1:], "-" + code[1:], code[:5] + "a", code + "\x00", "１２３４５６", "٠١٢٣٤٥",
		strings.Repeat("1", 1000),
	} {
		if step, valid := totp.Validate(rfcSecret, bad, now); valid || step != 0 {
			t.Errorf("Validate(%q) = %d, %v", bad, step, valid)
		}
	}
	other := []byte("another secret of 20b")
	if _, valid := totp.Validate(other, code, now); valid {
		t.Error("a code of another secret accepted")
	}
}

func TestShortSecretsRefused(t *testing.T) {
	for _, secret := range [][]byte{nil, {}, []byte("fifteen bytes!!")} {
		if _, err := totp.GenerateCode(secret, time.Now()); err == nil {
			t.Errorf("GenerateCode with a %d-byte secret", len(secret))
		}
		// Whatever the code, a short secret validates nothing.
		for _, code := range []string{"000000", "123456"} {
			if _, ok := totp.Validate(secret, code, time.Now()); ok {
				t.Errorf("Validate with a %d-byte secret accepted %s", len(secret), code)
			}
		}
	}
}

func TestEnroll(t *testing.T) {
	e, err := totp.Enroll("mcpguard", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Secret) != 20 {
		t.Fatalf("secret of %d bytes, want 20", len(e.Secret))
	}
	u, err := url.Parse(e.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/mcpguard:alice@example.com" ||
		q.Get("issuer") != "mcpguard" || q.Get("algorithm") != "SHA1" || q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Fatalf("URI %q", e.URI)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(q.Get("secret"))
	if err != nil || !bytes.Equal(secret, e.Secret) {
		t.Fatalf("the URI's secret %q is not Secret", q.Get("secret"))
	}
	now := time.Now()
	code, err := totp.GenerateCode(e.Secret, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := totp.Validate(e.Secret, code, now); !ok {
		t.Fatal("an enrolled secret's code refused")
	}
	e2, err := totp.Enroll("mcpguard", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(e.Secret, e2.Secret) {
		t.Fatal("two enrolments share a secret")
	}
	for name, args := range map[string][2]string{
		"no issuer":    {"", "alice"},
		"no account":   {"mcpguard", ""},
		"colon issuer": {"mcp:guard", "alice"},
		"long account": {"mcpguard", strings.Repeat("a", 300)},
		"long issuer":  {strings.Repeat("a", 300), "alice"},
	} {
		if _, err := totp.Enroll(args[0], args[1]); err == nil {
			t.Errorf("%s: enrolled", name)
		}
	}
}

var backupCode = regexp.MustCompile(`^[23456789abcdefghjkmnpqrstuvwxyz]{5}-[23456789abcdefghjkmnpqrstuvwxyz]{5}$`)

func TestBackupCodes(t *testing.T) {
	codes, hashes, err := totp.NewBackupCodes(10)
	if err != nil || len(codes) != 10 || len(hashes) != 10 {
		t.Fatalf("NewBackupCodes(10) = %d codes, %d hashes, %v", len(codes), len(hashes), err)
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if !backupCode.MatchString(c) || seen[c] {
			t.Fatalf("code %q: malformed or repeated", c)
		}
		seen[c] = true
		if !bytes.Equal(hashes[i], totp.HashBackupCode(c)) {
			t.Fatalf("hashes[%d] is not HashBackupCode(codes[%d])", i, i)
		}
	}
	for _, n := range []int{0, -1, 101} {
		if _, _, err := totp.NewBackupCodes(n); err == nil {
			t.Errorf("NewBackupCodes(%d) succeeded", n)
		}
	}
}

// Every character of the alphabet is equally likely. Over 100,000
// characters, each of the 31 is expected 3,226 times (standard deviation
// 56), and the first eight together 25,806 times (deviation 138): folding
// random bytes onto the alphabet with a bare modulo would draw those 28,125
// times. The bounds are six deviations away.
func TestBackupCodesUniform(t *testing.T) {
	const alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
	counts := map[rune]int{}
	for range 100 {
		codes, _, err := totp.NewBackupCodes(100)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range codes {
			for _, r := range strings.ReplaceAll(c, "-", "") {
				counts[r]++
			}
		}
	}
	if len(counts) != len(alphabet) {
		t.Fatalf("%d distinct characters, want %d", len(counts), len(alphabet))
	}
	firstEight := 0
	for i, r := range alphabet {
		if n := counts[r]; n < 3226-336 || n > 3226+336 {
			t.Errorf("%q drawn %d times of 100,000, expected 3,226", r, n)
		}
		if i < 8 {
			firstEight += counts[r]
		}
	}
	if firstEight < 25806-830 || firstEight > 25806+830 {
		t.Errorf("the first eight characters drawn %d times of 100,000, expected 25,806: the draw is biased", firstEight)
	}
}

func TestHashBackupCode(t *testing.T) {
	want := sha256.Sum256([]byte("abcdefghij"))
	for _, typed := range []string{"abcde-fghij", "ABCDE FGHIJ", "abcdefghij", "AbCdE-fGhIj", " abcde fghij\n", "a-b-c-d-e-f-g-h-i-j"} {
		if got := totp.HashBackupCode(typed); !bytes.Equal(got, want[:]) {
			t.Errorf("HashBackupCode(%q) is not the digest of abcdefghij", typed)
		}
	}
	for _, other := range []string{"abcde-fghik", "abcde-fghi", "abcde_fghij", "abcdefghij0"} {
		if bytes.Equal(totp.HashBackupCode(other), want[:]) {
			t.Errorf("HashBackupCode(%q) matches abcde-fghij", other)
		}
	}
}

// modules reads a QR rendering back into rows of light (true) and dark
// modules, two rows per line.
func modules(t *testing.T, s string) [][]bool {
	t.Helper()
	if !strings.HasSuffix(s, "\n") {
		t.Fatal("rendering does not end with a newline")
	}
	var rows [][]bool
	for line := range strings.Lines(s) {
		line = strings.TrimSuffix(line, "\n")
		top := make([]bool, 0, len(line))
		bottom := make([]bool, 0, len(line))
		for _, r := range line {
			switch r {
			case '█':
				top, bottom = append(top, true), append(bottom, true)
			case '▀':
				top, bottom = append(top, true), append(bottom, false)
			case '▄':
				top, bottom = append(top, false), append(bottom, true)
			case ' ':
				top, bottom = append(top, false), append(bottom, false)
			default:
				t.Fatalf("unexpected %q in rendering", r)
			}
		}
		rows = append(rows, top, bottom)
	}
	return rows
}

func TestQR(t *testing.T) {
	const uri = "otpauth://totp/mcpguard:alice?algorithm=SHA1&digits=6&issuer=mcpguard&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	s, err := totp.QR(uri)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	width := utf8.RuneCountInString(lines[0])
	for _, l := range lines {
		if utf8.RuneCountInString(l) != width {
			t.Fatal("rows of different widths")
		}
	}
	// A QR code is square, of an odd number of modules n (with the quiet
	// zone too): n columns and (n+1)/2 lines of two module rows.
	if width%2 != 1 || len(lines) != (width+1)/2 {
		t.Fatalf("%d columns by %d lines is not a square code", width, len(lines))
	}

	grid := modules(t, s)
	n := width
	// The quiet zone: four light modules on every side (and the half row
	// below the last, which the last line draws light).
	const quiet = 4
	for y, row := range grid {
		for x, light := range row {
			inCode := x >= quiet && x < n-quiet && y >= quiet && y < n-quiet
			if !inCode && !light {
				t.Fatalf("dark module at (%d, %d), in the quiet zone", x, y)
			}
		}
	}
	// What is inside is exactly the QR code of uri.
	want, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		t.Fatal(err)
	}
	size := want.Bounds().Dx()
	if size != n-2*quiet {
		t.Fatalf("code of %d modules, want %d", n-2*quiet, size)
	}
	for y := range size {
		for x := range size {
			r, _, _, _ := want.At(x, y).RGBA()
			if light := r > 0x7fff; grid[y+quiet][x+quiet] != light {
				t.Fatalf("module (%d, %d) differs from the QR code of the URI", x, y)
			}
		}
	}
	// The three finder patterns: a dark 7×7 ring around a light ring
	// around a dark 3×3 square, in three corners.
	for _, corner := range [][2]int{{0, 0}, {size - 7, 0}, {0, size - 7}} {
		for dy := range 7 {
			for dx := range 7 {
				ring := max(abs(dx-3), abs(dy-3)) // 3 outer, 2 light, ≤1 centre
				if dark := !grid[quiet+corner[1]+dy][quiet+corner[0]+dx]; dark != (ring != 2) {
					t.Fatalf("no finder pattern at %v", corner)
				}
			}
		}
	}

	again, err := totp.QR(uri)
	if err != nil || again != s {
		t.Fatal("QR is not deterministic")
	}
	other, err := totp.QR(strings.Replace(uri, "alice", "bob", 1))
	if err != nil || other == s {
		t.Fatal("two URIs give one QR code")
	}
}

func TestQRLimits(t *testing.T) {
	if _, err := totp.QR(strings.Repeat("x", 2048)); err != nil {
		t.Fatalf("a URI of 2048 bytes: %v", err)
	}
	for _, uri := range []string{"", strings.Repeat("x", 2049)} {
		if _, err := totp.QR(uri); err == nil {
			t.Errorf("QR of %d bytes encoded", len(uri))
		}
	}
}

func abs(x int) int { return max(x, -x) }

func BenchmarkValidate(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	code, err := totp.GenerateCode(rfcSecret, now)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := totp.Validate(rfcSecret, code, now); !ok {
			b.Fatal("refused")
		}
	}
}
