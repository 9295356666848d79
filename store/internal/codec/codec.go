// Package codec converts between store records and SQL rows in the schema
// shape the SQL backends share: times as int64 nanoseconds since 1970 (0
// meaning unset), lists as JSON text, digests and keys as blobs.
// store/sqlite and store/postgres both read and write rows through it, so
// the two backends cannot drift apart in how a record is encoded.
package codec

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/store"
)

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row, pgx.Rows.
type Scanner interface{ Scan(dest ...any) error }

// KeyColumns are the api_keys columns ScanKey reads, in order.
const KeyColumns = `id, name, hash, roles, scopes, created_at, expires_at, last_used_at, revoked_at, prev_hash, prev_expires_at`

// UserColumns are the oauth_users columns ScanUser reads, in order.
const UserColumns = `name, password_hash, roles, mfa_secret, backup_codes, mfa_last_step, failed_logins, locked_until, created_at, updated_at`

// ClientColumns are the oauth_clients columns ScanClient reads, in order.
const ClientColumns = `id, secret_hash, name, redirect_uris, grant_types, auth_method, scopes, roles, dynamic, created_at`

// CodeColumns are the oauth_codes columns ScanCode reads, in order.
const CodeColumns = `hash, family_id, client_id, redirect_uri, subject, scopes, resource, code_challenge, auth_time, mfa_time, created_at, expires_at, used_at`

// RefreshColumns are the oauth_refresh_tokens columns ScanRefresh reads, in order.
const RefreshColumns = `hash, family_id, client_id, subject, scopes, resource, auth_time, mfa_time, created_at, expires_at, used_at, revoked_at, cert_x5t`

// SecretColumns are the secrets columns ScanSecret reads, in order.
const SecretColumns = `name, master_key_id, wrapped_key, ciphertext, created_at, updated_at`

// UnixNano stores t: nanoseconds since 1970, 0 for the zero time.
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromUnixNano reads what UnixNano stored, in UTC.
func FromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// EncodeList stores a list as JSON text ("[]" for nil).
func EncodeList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

// DecodeList reads what EncodeList stored; what names it in errors.
func DecodeList(raw string, what string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", what, err)
	}
	return l, nil
}

// ScanKey reads an API key (KeyColumns).
func ScanKey(row Scanner) (*store.APIKey, error) {
	var (
		k                                 store.APIKey
		roles, scopes                     string
		created, expires, used, revokedAt int64
		prevExpires                       int64
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &roles, &scopes, &created, &expires, &used, &revokedAt, &k.PreviousHash, &prevExpires); err != nil {
		return nil, err
	}
	var err error
	if k.Roles, err = DecodeList(roles, "roles"); err != nil {
		return nil, fmt.Errorf("api key %s: %w", k.ID, err)
	}
	if k.Scopes, err = DecodeList(scopes, "scopes"); err != nil {
		return nil, fmt.Errorf("api key %s: %w", k.ID, err)
	}
	k.CreatedAt, k.ExpiresAt = FromUnixNano(created), FromUnixNano(expires)
	k.LastUsedAt, k.RevokedAt = FromUnixNano(used), FromUnixNano(revokedAt)
	k.PreviousExpiresAt = FromUnixNano(prevExpires)
	if len(k.PreviousHash) == 0 {
		k.PreviousHash = nil
	}
	return &k, nil
}

// EncodeHashes stores digests as JSON text (base64 strings).
func EncodeHashes(h [][]byte) string {
	if h == nil {
		h = [][]byte{}
	}
	b, _ := json.Marshal(h) // [][]byte always marshals (as base64 strings)
	return string(b)
}

// ScanUser reads a user (UserColumns).
func ScanUser(row Scanner) (*store.User, error) {
	var (
		u                         store.User
		roles, backup             string
		locked, created, modified int64
	)
	if err := row.Scan(&u.Name, &u.PasswordHash, &roles, &u.MFASecret, &backup, &u.MFALastStep, &u.FailedLogins, &locked, &created, &modified); err != nil {
		return nil, err
	}
	var err error
	if u.Roles, err = DecodeList(roles, "roles"); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(backup), &u.BackupCodes); err != nil {
		return nil, fmt.Errorf("corrupt backup codes: %w", err)
	}
	if len(u.MFASecret) == 0 {
		u.MFASecret = nil
	}
	if len(u.BackupCodes) == 0 {
		u.BackupCodes = nil
	}
	u.LockedUntil, u.CreatedAt, u.UpdatedAt = FromUnixNano(locked), FromUnixNano(created), FromUnixNano(modified)
	return &u, nil
}

// ScanClient reads an OAuth client (ClientColumns).
func ScanClient(row Scanner) (*store.OAuthClient, error) {
	var (
		c                                store.OAuthClient
		redirects, grants, scopes, roles string
		created                          int64
	)
	if err := row.Scan(&c.ID, &c.SecretHash, &c.Name, &redirects, &grants, &c.TokenEndpointAuthMethod, &scopes, &roles, &c.Dynamic, &created); err != nil {
		return nil, err
	}
	var err error
	for _, f := range []struct {
		raw string
		dst *[]string
	}{{redirects, &c.RedirectURIs}, {grants, &c.GrantTypes}, {scopes, &c.Scopes}, {roles, &c.Roles}} {
		if *f.dst, err = DecodeList(f.raw, "client lists"); err != nil {
			return nil, err
		}
	}
	if len(c.SecretHash) == 0 {
		c.SecretHash = nil
	}
	c.CreatedAt = FromUnixNano(created)
	return &c, nil
}

// ScanCode reads an authorization code (CodeColumns).
func ScanCode(row Scanner) (*store.AuthCode, error) {
	var (
		c                                       store.AuthCode
		scopes                                  string
		authTime, mfaTime, created, exp, usedAt int64
	)
	if err := row.Scan(&c.Hash, &c.FamilyID, &c.ClientID, &c.RedirectURI, &c.Subject, &scopes, &c.Resource, &c.CodeChallenge,
		&authTime, &mfaTime, &created, &exp, &usedAt); err != nil {
		return nil, err
	}
	var err error
	if c.Scopes, err = DecodeList(scopes, "scopes"); err != nil {
		return nil, err
	}
	c.AuthTime, c.MFATime, c.CreatedAt = FromUnixNano(authTime), FromUnixNano(mfaTime), FromUnixNano(created)
	c.ExpiresAt, c.UsedAt = FromUnixNano(exp), FromUnixNano(usedAt)
	return &c, nil
}

// ScanRefresh reads a refresh token (RefreshColumns).
func ScanRefresh(row Scanner) (*store.RefreshToken, error) {
	var (
		t                                                store.RefreshToken
		scopes                                           string
		authTime, mfaTime, created, exp, used, revokedAt int64
	)
	if err := row.Scan(&t.Hash, &t.FamilyID, &t.ClientID, &t.Subject, &scopes, &t.Resource, &authTime, &mfaTime, &created, &exp, &used, &revokedAt, &t.CertThumbprint); err != nil {
		return nil, err
	}
	var err error
	if t.Scopes, err = DecodeList(scopes, "scopes"); err != nil {
		return nil, err
	}
	t.AuthTime, t.MFATime, t.CreatedAt = FromUnixNano(authTime), FromUnixNano(mfaTime), FromUnixNano(created)
	t.ExpiresAt, t.UsedAt, t.RevokedAt = FromUnixNano(exp), FromUnixNano(used), FromUnixNano(revokedAt)
	return &t, nil
}

// ScanSigningKey reads a signing key (id, algorithm, private_key,
// created_at, retired_at).
func ScanSigningKey(row Scanner) (*store.SigningKey, error) {
	var k store.SigningKey
	var created, retired int64
	if err := row.Scan(&k.ID, &k.Algorithm, &k.PrivateKeyPEM, &created, &retired); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RetiredAt = FromUnixNano(created), FromUnixNano(retired)
	return &k, nil
}

// ScanSecret reads a secret (SecretColumns).
func ScanSecret(row Scanner) (*store.Secret, error) {
	var s store.Secret
	var created, updated int64
	if err := row.Scan(&s.Name, &s.MasterKeyID, &s.WrappedKey, &s.Ciphertext, &created, &updated); err != nil {
		return nil, err
	}
	s.CreatedAt, s.UpdatedAt = FromUnixNano(created), FromUnixNano(updated)
	return &s, nil
}

// SessionColumns are the mcp_sessions columns ScanSession reads, in order.
const SessionColumns = `id, owner, subject, client_id, created_at, expires_at, last_seen, revoked_at`

// ScanSession reads an MCP session (SessionColumns).
func ScanSession(row Scanner) (*store.Session, error) {
	var s store.Session
	var created, expires, seen, revoked int64
	if err := row.Scan(&s.ID, &s.Owner, &s.Subject, &s.ClientID, &created, &expires, &seen, &revoked); err != nil {
		return nil, err
	}
	s.CreatedAt, s.ExpiresAt = FromUnixNano(created), FromUnixNano(expires)
	s.LastSeen, s.RevokedAt = FromUnixNano(seen), FromUnixNano(revoked)
	return &s, nil
}

// ToolPinColumns are the tool_pins columns ScanToolPin reads, in order.
const ToolPinColumns = `upstream, tool, hash, pinned_at`

// ScanToolPin reads a tool pin (ToolPinColumns).
func ScanToolPin(row Scanner) (*store.ToolPin, error) {
	var p store.ToolPin
	var at int64
	if err := row.Scan(&p.Upstream, &p.Tool, &p.Hash, &at); err != nil {
		return nil, err
	}
	p.PinnedAt = FromUnixNano(at)
	return &p, nil
}
