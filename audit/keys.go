package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateKey returns the HMAC key stored in the file at path, creating
// the file with 32 random bytes and mode 0600 if it does not exist. The file
// holds the raw key bytes. An existing file must be a regular file that
// neither group nor others can access (mode 0600 or stricter), and hold at
// least [MinKeyLen] bytes.
//
// Creation is atomic: the key is written to a temporary file and linked into
// place, so a crash never leaves an empty or partial key file, and two
// processes racing to create the key end up sharing one.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := readSecretFile(path)
	if err == nil {
		if len(key) < MinKeyLen {
			return nil, fmt.Errorf("audit: HMAC key file %s holds %d bytes, want at least %d", path, len(key), MinKeyLen)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("audit: generate HMAC key: %w", err)
	}
	if err := createSecretFile(path, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path) // another process won the race
		}
		return nil, err
	}
	return key, nil
}

// LoadOrCreateSigningKey returns the Ed25519 checkpoint signing key stored
// in the file at path, creating it if it does not exist. The file is PEM
// ("PRIVATE KEY", PKCS #8), mode 0600, with the same checks and atomic
// creation as [LoadOrCreateKey]. On creation, the public key is also
// written, as PEM ("PUBLIC KEY", PKIX), to path + ".pub" (mode 0644), for
// verifiers: see [LoadPublicKey].
func LoadOrCreateSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := readSecretFile(path)
	if err == nil {
		return parsePrivateKey(path, data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("audit: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("audit: encode signing key: %w", err)
	}
	if err := createSecretFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateSigningKey(path)
		}
		return nil, err
	}
	pubPEM, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".pub", pubPEM, 0o644); err != nil {
		return nil, fmt.Errorf("audit: write public key: %w", err)
	}
	return priv, nil
}

// MarshalPublicKey returns pub as PEM ("PUBLIC KEY", PKIX), the format
// [LoadPublicKey] reads.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("audit: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// LoadPublicKey reads an Ed25519 public key in PEM ("PUBLIC KEY", PKIX)
// from the file at path, such as the ".pub" file written by
// [LoadOrCreateSigningKey], for [Verify].
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: read public key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("audit: %s: no PEM PUBLIC KEY block", path)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: parse public key: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("audit: %s: %T is not an Ed25519 key", path, k)
	}
	return pub, nil
}

func parsePrivateKey(path string, data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit: %s: no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: parse signing key: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: %s: %T is not an Ed25519 key", path, k)
	}
	return priv, nil
}

// readSecretFile reads a key file, refusing one that group or others can
// access or that is not a regular file.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: stat key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit: key file %s has mode %04o: group or others can access it; chmod 600 it", path, perm)
	}
	const maxKeyFile = 64 << 10
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("audit: read key file: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("audit: key file %s is larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}

// createSecretFile creates path with data and mode 0600, atomically; it
// fails with an error matching fs.ErrExist when path exists.
func createSecretFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("audit: create key file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("audit: create key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("audit: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("audit: sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit: close key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("audit: create key file: %w", err)
	}
	return syncDir(dir)
}
