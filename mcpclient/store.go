package mcpclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mcpguard/mcpguard/internal/seal"
	"golang.org/x/oauth2"
)

// maxRecord bounds a token file: a record holds a few tokens and URLs.
const maxRecord = 64 << 10

// Record is what the store keeps for one MCP server: the client identity the
// login used and the current tokens. It holds secrets; it is written only
// to a 0600 file and never printed.
type Record struct {
	// Server is the MCP endpoint URL the login is for.
	Server string `json:"server"`
	// ClientID and ClientSecret are the OAuth client identity used for the
	// login (a CIMD URL, a pre-registered or a dynamically registered client).
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// TokenURL and AuthStyle are what a refresh needs.
	TokenURL  string           `json:"token_url"`
	AuthStyle oauth2.AuthStyle `json:"auth_style"`
	// Scopes are the scopes requested by the last authorization; a step-up
	// requests them again together with the challenged ones.
	Scopes []string `json:"scopes,omitempty"`

	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	// Updated is when the record was last written.
	Updated time.Time `json:"updated"`
}

// token returns the record's tokens in golang.org/x/oauth2's form.
func (r *Record) token() *oauth2.Token {
	return &oauth2.Token{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, TokenType: r.TokenType, Expiry: r.Expiry}
}

// oauthConfig returns the client configuration a refresh uses.
func (r *Record) oauthConfig() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     r.ClientID,
		ClientSecret: r.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: r.TokenURL, AuthStyle: r.AuthStyle},
		Scopes:       r.Scopes,
	}
}

// Store keeps one [Record] per MCP server in a directory, one file each,
// named by a hash of the server URL. Files are created 0600 and the
// directory 0700; writes go to a temporary file that is renamed into place,
// so a reader never sees half a record. With a key, records are sealed
// (AES-256-GCM, the server URL as associated data) so that a copied file is
// useless without the key.
type Store struct {
	dir string
	box *seal.Box
}

// DefaultDir is where tokens are kept unless told otherwise:
// os.UserConfigDir()/mcpguard/tokens (~/.config/mcpguard/tokens on Linux).
func DefaultDir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the user configuration directory: %w (pass --token-dir)", err)
	}
	return filepath.Join(base, "mcpguard", "tokens"), nil
}

// OpenStore opens (creating it 0700 if needed) the token directory dir, or
// [DefaultDir] when dir is empty. A non-empty key (at least 32 bytes) seals
// every record with a key derived from it; records written without a key
// cannot be read with one and the reverse.
func OpenStore(dir string, key []byte) (*Store, error) {
	if dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the token directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("token directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("token directory %s is readable by others and cannot be fixed: %w", dir, err)
		}
	}
	s := &Store{dir: dir}
	if len(key) > 0 {
		if len(key) < 32 {
			return nil, errors.New("the token encryption key must be at least 32 bytes")
		}
		box, err := seal.New(key, "mcpguard client token store v1", 4*maxRecord)
		if err != nil {
			return nil, fmt.Errorf("token encryption key: %w", err)
		}
		s.box = box
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the file that holds serverURL's record.
func (s *Store) Path(serverURL string) string {
	sum := sha256.Sum256([]byte(serverURL))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:12])+".json")
}

// Load returns serverURL's record, or nil and no error when there is none.
func (s *Store) Load(serverURL string) (*Record, error) {
	f, err := os.Open(s.Path(serverURL))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the stored login: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4*maxRecord+1))
	if err != nil {
		return nil, fmt.Errorf("reading the stored login: %w", err)
	}
	if len(data) > 4*maxRecord {
		return nil, fmt.Errorf("the stored login %s is too large; delete it and log in again", s.Path(serverURL))
	}
	if s.box != nil {
		plain, ok := s.box.Open(string(data), []byte(serverURL))
		if !ok {
			return nil, fmt.Errorf("the stored login %s cannot be decrypted with this key; log in again", s.Path(serverURL))
		}
		data = plain
	}
	if s.box == nil && len(data) > 0 && data[0] != '{' {
		return nil, fmt.Errorf("the stored login %s is encrypted: set MCPGUARD_TOKEN_KEY to its key, or log in again", s.Path(serverURL))
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("the stored login %s is damaged (%v); log in again", s.Path(serverURL), err)
	}
	if r.Server != serverURL {
		return nil, fmt.Errorf("the stored login %s is for another server; log in again", s.Path(serverURL))
	}
	return &r, nil
}

// Save writes r atomically with mode 0600. Callers that read, change and
// write a record hold [Store.Lock] for the server around the three steps.
func (s *Store) Save(r *Record) error {
	r.Updated = time.Now().UTC()
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding the login: %w", err)
	}
	if s.box != nil {
		sealed, err := s.box.Seal(data, []byte(r.Server))
		if err != nil {
			return fmt.Errorf("encrypting the login: %w", err)
		}
		data = []byte(sealed)
	}
	if len(data) > 4*maxRecord {
		return errors.New("the login is too large to store")
	}
	path := s.Path(r.Server)
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("storing the login: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("storing the login: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("storing the login: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("storing the login: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("storing the login: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("storing the login: %w", err)
	}
	return nil
}

// Delete removes serverURL's record (a logout). A missing record is not an
// error.
func (s *Store) Delete(serverURL string) error {
	if err := os.Remove(s.Path(serverURL)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stored login: %w", err)
	}
	return nil
}

// Lock takes the exclusive advisory lock (flock) for serverURL's record,
// waiting until it is free or ctx is done. Every process that may log in or
// refresh for that server takes it first, then re-reads the record: whoever
// comes second finds the work done. The returned function releases it.
func (s *Store) Lock(ctx context.Context, serverURL string) (unlock func(), err error) {
	f, err := os.OpenFile(s.Path(serverURL)+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the login lock: %w", err)
	}
	delay := 5 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking the stored login: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another mcpguard process to finish logging in: %w", ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}
