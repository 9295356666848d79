package secrets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/secrets"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

const secretValue = "ghp_s3cr3t-token-value"

func key(t *testing.T) *secrets.MasterKey {
	t.Helper()
	k, _, err := secrets.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTripAndWrongKey(t *testing.T) {
	k1, k2 := key(t), key(t)
	ring := secrets.NewKeyring(k1)
	rec, err := ring.Seal("github", []byte(secretValue))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec.Ciphertext, []byte(secretValue)) || bytes.Contains(rec.WrappedKey, []byte(secretValue)) || rec.MasterKeyID != k1.ID() {
		t.Fatalf("record = %+v", rec)
	}
	v, err := ring.Open(rec)
	if err != nil || v.Reveal() != secretValue {
		t.Fatalf("open: %q %v", v.Reveal(), err)
	}
	_, err = secrets.NewKeyring(k2).Open(rec)
	if !errors.Is(err, secrets.ErrWrongMasterKey) || !strings.Contains(err.Error(), k1.ID()) || strings.Contains(err.Error(), secretValue) {
		t.Fatalf("wrong master key: %v", err)
	}
	// A record copied under another name does not decrypt.
	moved := *rec
	moved.Name = "other"
	if _, err := ring.Open(&moved); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("renamed record: %v", err)
	}
	// A tampered ciphertext does not either.
	bad := *rec
	bad.Ciphertext = append([]byte{}, rec.Ciphertext...)
	bad.Ciphertext[len(bad.Ciphertext)-1] ^= 1
	if _, err := ring.Open(&bad); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("tampered record: %v", err)
	}
	if _, err := ring.Seal("bad name", []byte("x")); err == nil {
		t.Fatal("an invalid name was accepted")
	}
}

func TestParseMasterKey(t *testing.T) {
	_, hexKey, _ := secrets.NewMasterKey()
	k1, err := secrets.ParseMasterKey([]byte(hexKey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	fmt.Sscanf(hexKey, "%x", &raw)
	for _, form := range []string{strings.ToUpper(hexKey), base64Std(raw)} {
		k, err := secrets.ParseMasterKey([]byte(form))
		if err != nil || k.ID() != k1.ID() {
			t.Fatalf("%q: %v", form, err)
		}
	}
	for _, bad := range []string{"", "abc", hexKey[:62], "not a key at all, not at all, not at all!!!!"} {
		if _, err := secrets.ParseMasterKey([]byte(bad)); err == nil || strings.Contains(err.Error(), bad) && bad != "" {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if strings.Contains(fmt.Sprint(k1), hexKey) || strings.Contains(fmt.Sprintf("%+v", k1), hexKey) {
		t.Fatal("a master key prints its value")
	}
}

func base64Std(b []byte) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.Encode(b) // []byte marshals as standard base64
	return strings.Trim(strings.TrimSpace(buf.String()), `"`)
}

// Rotating the master key re-wraps every secret in one transaction; every
// secret stays readable, by the new key and, during a rollout, by servers
// that hold the new key with the old one as previous.
func TestMasterKeyRotation(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old, next := key(t), key(t)
	ring := secrets.NewKeyring(old)
	want := map[string]string{"github": secretValue, "docs": "docs-token", "db": "postgres://u:p@h/d"}
	for name, v := range want {
		rec, err := ring.Seal(name, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutSecret(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := st.GetSecret(ctx, "github")
	rotating := secrets.NewKeyring(next, old)
	n, err := st.RewrapSecrets(ctx, rotating.Rewrap)
	if err != nil || n != 3 {
		t.Fatalf("rewrap: %d %v", n, err)
	}
	after, _ := st.GetSecret(ctx, "github")
	if after.MasterKeyID != next.ID() || !bytes.Equal(after.Ciphertext, before.Ciphertext) || bytes.Equal(after.WrappedKey, before.WrappedKey) {
		t.Fatalf("after rotation: %+v", after)
	}
	only := secrets.NewKeyring(next)
	list, _ := st.ListSecrets(ctx)
	for _, rec := range list {
		v, err := only.Open(rec)
		if err != nil || v.Reveal() != want[rec.Name] {
			t.Fatalf("%s after rotation: %v", rec.Name, err)
		}
	}
	if _, err := secrets.NewKeyring(old).Open(after); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatal("the old key alone still opens rotated records")
	}
	// A rotation that cannot open a record changes nothing.
	stranger := secrets.NewKeyring(key(t))
	if _, err := st.RewrapSecrets(ctx, stranger.Rewrap); err == nil {
		t.Fatal("a rewrap with a foreign key succeeded")
	}
	if again, _ := st.GetSecret(ctx, "github"); again.MasterKeyID != next.ID() {
		t.Fatal("a failed rewrap changed records")
	}
}

// Value never shows itself through fmt, encoding/json or log/slog, even
// inside a struct.
func TestValueRedaction(t *testing.T) {
	type cfg struct {
		Name  string
		Token secrets.Value
	}
	c := cfg{Name: "upstream", Token: secrets.Value(secretValue)}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("cfg", "token", c.Token, "cfg", c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("cfg", "token", c.Token)
	js, _ := json.Marshal(c)
	out := strings.Join([]string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q %x %X", c, c, c, c.Token, c.Token, c.Token, c.Token),
		string(js), logs.String(),
	}, "\n")
	if strings.Contains(out, secretValue) || strings.Contains(out, fmt.Sprintf("%x", secretValue)) {
		t.Fatalf("the secret leaked:\n%s", out)
	}
	if !strings.Contains(out, "[REDACTED]") || c.Token.Reveal() != secretValue {
		t.Fatal("redaction or Reveal broken")
	}
}

func TestSealedFields(t *testing.T) {
	k1, k2 := key(t), key(t)
	ring := secrets.NewKeyring(k1)
	v, err := ring.SealField("totp.abc", []byte(secretValue))
	if err != nil || !secrets.IsSealedField(v) || bytes.Contains(v, []byte(secretValue)) {
		t.Fatalf("%q %v", v, err)
	}
	if p, err := ring.OpenField("totp.abc", v); err != nil || string(p) != secretValue {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := ring.OpenField("totp.other", v); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("moved field: %v", err)
	}
	if p, _ := ring.OpenField("x", []byte("legacy-clear")); string(p) != "legacy-clear" {
		t.Fatal("a field stored in clear is not passed through")
	}
	next := secrets.NewKeyring(k2, k1)
	rewrapped, err := next.RewrapField("totp.abc", v)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := secrets.NewKeyring(k2).OpenField("totp.abc", rewrapped); err != nil || string(p) != secretValue {
		t.Fatalf("after rewrap: %q %v", p, err)
	}
	sealedClear, _ := next.RewrapField("x", []byte("legacy-clear"))
	if !secrets.IsSealedField(sealedClear) {
		t.Fatal("rewrapping a clear field does not seal it")
	}
}
