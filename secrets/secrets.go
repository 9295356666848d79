// Package secrets encrypts mcpguard's stored secrets (upstream
// credentials, keys) with envelope encryption, and redacts secrets held in
// memory from every way Go prints them.
//
// Each secret is encrypted with AES-256-GCM under a data key of its own; the
// data key is encrypted ("wrapped") with AES-256-GCM under a master key that
// never touches the store: it comes from the environment or a file. A
// record names the master key that wrapped it by a key id (a digest of the
// key, not the key), so that:
//
//   - a wrong master key is refused with a clear error naming the key id
//     the record needs, rather than yielding garbage;
//   - rotating the master key re-wraps the small data keys only, in one
//     transaction ([Keyring.Rewrap] with store.SecretStore.RewrapSecrets),
//     while servers that still hold the previous master key keep reading
//     every secret: a Keyring opens records of its current and previous
//     keys.
//
// Names are bound into the ciphertexts as additional data, so a record
// copied under another name does not decrypt.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/mcpguard/mcpguard/store"
)

// KeySize is the size of master and data keys: AES-256.
const KeySize = 32

// ErrWrongMasterKey is returned when no master key of a Keyring opens a
// record, or the record was altered.
var ErrWrongMasterKey = errors.New("secrets: the master key does not open this secret")

// MasterKey is a key that wraps data keys.
type MasterKey struct {
	id  string
	key []byte
}

// ID is the key's public id: the first 8 bytes of SHA-256 over a domain
// label and the key, in hex.
func (k *MasterKey) ID() string { return k.id }

// String never shows the key.
func (k *MasterKey) String() string { return "secrets.MasterKey(" + k.id + ")" }

// ParseMasterKey reads a master key: 32 bytes given as 64 hex digits or as
// base64 (standard or URL alphabet, padded or not), surrounding whitespace
// ignored. Generate one with `openssl rand -hex 32`.
func ParseMasterKey(b []byte) (*MasterKey, error) {
	s := string(bytes.TrimSpace(b))
	var key []byte
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		key = k
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
				key = k
				break
			}
		}
	}
	if key == nil {
		return nil, errors.New("secrets: a master key must be 32 bytes, written as 64 hex digits or base64 (generate one with `openssl rand -hex 32`)")
	}
	sum := sha256.Sum256(append([]byte("mcpguard master key id v1\x00"), key...))
	return &MasterKey{id: hex.EncodeToString(sum[:8]), key: key}, nil
}

// NewMasterKey returns a new random master key and its hex form.
func NewMasterKey() (*MasterKey, string, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, "", fmt.Errorf("secrets: %w", err)
	}
	h := hex.EncodeToString(b)
	k, err := ParseMasterKey([]byte(h))
	return k, h, err
}

// Keyring seals with its current master key and opens records of its
// current and previous keys.
type Keyring struct {
	current *MasterKey
	byID    map[string]*MasterKey
}

// NewKeyring returns a Keyring. current must not be nil.
func NewKeyring(current *MasterKey, previous ...*MasterKey) *Keyring {
	k := &Keyring{current: current, byID: map[string]*MasterKey{current.id: current}}
	for _, p := range previous {
		if p != nil {
			k.byID[p.id] = p
		}
	}
	return k
}

// Keys returns the keyring's master keys, current first.
func (k *Keyring) Keys() []*MasterKey {
	out := []*MasterKey{k.current}
	for id, mk := range k.byID {
		if id != k.current.id {
			out = append(out, mk)
		}
	}
	return out
}

// CurrentID is the id of the key new records are wrapped with.
func (k *Keyring) CurrentID() string { return k.current.id }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ValidName reports whether name can name a secret: 1 to 128 letters,
// digits, '_', '.' and '-', starting with a letter or digit.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// MaxValue bounds a secret's value.
const MaxValue = 64 << 10

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal returns nonce||ciphertext of plain under key with aad.
func seal(key, plain, aad []byte) ([]byte, error) {
	a, err := gcm(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, plain, aad), nil
}

func open(key, sealed, aad []byte) ([]byte, error) {
	a, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < a.NonceSize()+a.Overhead() {
		return nil, ErrWrongMasterKey
	}
	plain, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], aad)
	if err != nil {
		return nil, ErrWrongMasterKey
	}
	return plain, nil
}

func dataAAD(name string) []byte { return []byte("mcpguard secret v1\x00" + name) }
func keyAAD(name, kid string) []byte {
	return []byte("mcpguard data key v1\x00" + name + "\x00" + kid)
}

// Seal encrypts value as the secret name, under a fresh data key wrapped
// with the current master key.
func (k *Keyring) Seal(name string, value []byte) (*store.Secret, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("secrets: invalid name %q: use 1 to 128 letters, digits, '_', '.', '-'", name)
	}
	if len(value) == 0 || len(value) > MaxValue {
		return nil, fmt.Errorf("secrets: a value must be 1 to %d bytes", MaxValue)
	}
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	ct, err := seal(dek, value, dataAAD(name))
	if err != nil {
		return nil, fmt.Errorf("secrets: encrypt: %w", err)
	}
	wrapped, err := seal(k.current.key, dek, keyAAD(name, k.current.id))
	if err != nil {
		return nil, fmt.Errorf("secrets: wrap: %w", err)
	}
	clear(dek)
	return &store.Secret{Name: name, MasterKeyID: k.current.id, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// unwrap returns the record's data key.
func (k *Keyring) unwrap(s *store.Secret) ([]byte, error) {
	mk, ok := k.byID[s.MasterKeyID]
	if !ok {
		return nil, fmt.Errorf("%w %q: it was wrapped with master key %s, and this server has %s; set the master key it was stored with (or list it as a previous key)",
			ErrWrongMasterKey, s.Name, s.MasterKeyID, k.current.id)
	}
	dek, err := open(mk.key, s.WrappedKey, keyAAD(s.Name, s.MasterKeyID))
	if err != nil {
		return nil, fmt.Errorf("%w %q: its data key does not decrypt (the record was altered)", ErrWrongMasterKey, s.Name)
	}
	return dek, nil
}

// Open decrypts a record.
func (k *Keyring) Open(s *store.Secret) (Value, error) {
	dek, err := k.unwrap(s)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	plain, err := open(dek, s.Ciphertext, dataAAD(s.Name))
	if err != nil {
		return nil, fmt.Errorf("%w %q: its value does not decrypt (the record was altered)", ErrWrongMasterKey, s.Name)
	}
	return plain, nil
}

// Rewrap returns the record with its data key wrapped by the current master
// key; the value's ciphertext is unchanged.
func (k *Keyring) Rewrap(s *store.Secret) (*store.Secret, error) {
	dek, err := k.unwrap(s)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	wrapped, err := seal(k.current.key, dek, keyAAD(s.Name, k.current.id))
	if err != nil {
		return nil, fmt.Errorf("secrets: wrap: %w", err)
	}
	out := *s
	out.MasterKeyID, out.WrappedKey = k.current.id, wrapped
	return &out, nil
}

// Value is a secret in memory. Every way fmt, encoding/json and log/slog
// print it shows "[REDACTED]"; only Bytes and Reveal give the value.
type Value []byte

const redacted = "[REDACTED]"

// Bytes returns the secret.
func (v Value) Bytes() []byte { return v }

// Reveal returns the secret as a string, for APIs that need one.
func (v Value) Reveal() string { return string(v) }

// String is redacted.
func (v Value) String() string { return redacted }

// GoString is redacted.
func (v Value) GoString() string { return redacted }

// Format redacts every verb, including %x and %q.
func (v Value) Format(f fmt.State, _ rune) { f.Write([]byte(redacted)) }

// MarshalJSON is redacted.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText is redacted.
func (v Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue is redacted.
func (v Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// sealedPrefix starts a field sealed by SealField.
const sealedPrefix = "mcpguard-sealed-v1:"

// SealField seals a secret that lives inside another record (a private
// key, a TOTP secret) rather than in the secret store: the result is the
// same envelope as Seal, encoded as one self-describing value that
// OpenField recognizes. name binds the value to its place.
func (k *Keyring) SealField(name string, value []byte) ([]byte, error) {
	rec, err := k.Seal(name, value)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding
	return []byte(sealedPrefix + rec.MasterKeyID + ":" + enc.EncodeToString(rec.WrappedKey) + ":" + enc.EncodeToString(rec.Ciphertext)), nil
}

// IsSealedField reports whether v was produced by SealField.
func IsSealedField(v []byte) bool { return bytes.HasPrefix(v, []byte(sealedPrefix)) }

// parseField decodes a sealed field into a record named name.
func parseField(name string, v []byte) (*store.Secret, error) {
	parts := bytes.Split(bytes.TrimPrefix(v, []byte(sealedPrefix)), []byte(":"))
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w %q: malformed sealed value", ErrWrongMasterKey, name)
	}
	enc := base64.RawURLEncoding
	wrapped, err1 := enc.DecodeString(string(parts[1]))
	ct, err2 := enc.DecodeString(string(parts[2]))
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w %q: malformed sealed value", ErrWrongMasterKey, name)
	}
	return &store.Secret{Name: name, MasterKeyID: string(parts[0]), WrappedKey: wrapped, Ciphertext: ct}, nil
}

// OpenField opens a value sealed by SealField under name. A value that was
// never sealed (stored before a master key was configured) is returned as
// it is.
func (k *Keyring) OpenField(name string, v []byte) ([]byte, error) {
	if !IsSealedField(v) {
		return v, nil
	}
	rec, err := parseField(name, v)
	if err != nil {
		return nil, err
	}
	plain, err := k.Open(rec)
	return plain, err
}

// RewrapField re-wraps a sealed field's data key with the current master
// key, or seals a field that was stored in clear.
func (k *Keyring) RewrapField(name string, v []byte) ([]byte, error) {
	if !IsSealedField(v) {
		return k.SealField(name, v)
	}
	rec, err := parseField(name, v)
	if err != nil {
		return nil, err
	}
	next, err := k.Rewrap(rec)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding
	return []byte(sealedPrefix + next.MasterKeyID + ":" + enc.EncodeToString(next.WrappedKey) + ":" + enc.EncodeToString(next.Ciphertext)), nil
}
