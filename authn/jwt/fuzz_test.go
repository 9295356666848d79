package jwt

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzAuthenticate feeds token-shaped input to the verifier: it must
// never panic, and it must accept only a token whose decoded header,
// payload and signature are those of a token the test signed (so a
// malleable encoding is harmless, and nothing forged gets in).
func FuzzAuthenticate(f *testing.F) {
	k := testKeys()
	clock := newFakeClock()
	cfg := Config{Issuer: testIssuer, Audiences: []string{testAudience}, Keys: staticKeys(k), Now: clock.Now}
	a, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	valid := []string{
		sign(f, jose.HS256, k.hmac, "hs", claimsAt(clock.Now())),
		sign(f, jose.ES256, k.ec, "es", claimsAt(clock.Now())),
		sign(f, jose.RS256, k.rsa, "rs", claimsAt(clock.Now())),
		sign(f, jose.EdDSA, k.ed, "ed", claimsAt(clock.Now())),
	}
	decoded := func(tok string) [][]byte {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			return nil
		}
		out := make([][]byte, 3)
		for i, p := range parts {
			b, err := base64.RawURLEncoding.DecodeString(p)
			if err != nil {
				return nil
			}
			out[i] = b
		}
		return out
	}
	for _, v := range valid {
		if _, err := a.Authenticate(context.Background(), bearer(v)); err != nil {
			f.Fatalf("seed token refused: %v", err)
		}
		f.Add(v)
		parts := strings.Split(v, ".")
		f.Add(parts[0] + "." + parts[1] + ".")                                                       // no signature
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".") // alg none
		f.Add(strings.Replace(v, ".", "..", 1))
	}
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := a.Authenticate(context.Background(), bearer(tok))
		if err != nil {
			if p != nil {
				t.Fatal("a principal with an error")
			}
			return
		}
		got := decoded(tok)
		for _, v := range valid {
			want := decoded(v)
			if got != nil && bytes.Equal(got[0], want[0]) && bytes.Equal(got[1], want[1]) && bytes.Equal(got[2], want[2]) {
				return
			}
		}
		t.Fatalf("accepted a token the test never signed: %q", tok)
	})
}
