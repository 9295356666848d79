package sqlite

import (
	"bytes"
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

var _ store.OAuthStore = (*Store)(nil)

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// notFound maps a missing row to store.ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// affected returns ErrNotFound when res changed no row.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CreateUser implements store.OAuthStore.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	now := time.Now().UnixNano()
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_users (`+codec.UserColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Name, u.PasswordHash, codec.EncodeList(u.Roles), u.MFASecret, codec.EncodeHashes(u.BackupCodes), u.MFALastStep, u.FailedLogins, codec.UnixNano(u.LockedUntil), now, now)
	if isUnique(err) {
		return fmt.Errorf("store: user %s: %w", u.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create user: %w", err)
	}
	return nil
}

// GetUser implements store.OAuthStore.
func (s *Store) GetUser(ctx context.Context, name string) (*store.User, error) {
	u, err := codec.ScanUser(s.db.QueryRowContext(ctx, `SELECT `+codec.UserColumns+` FROM oauth_users WHERE name = ?`, name))
	if err != nil {
		return nil, notFound(err, "get user")
	}
	return u, nil
}

// ListUsers implements store.OAuthStore.
func (s *Store) ListUsers(ctx context.Context) ([]*store.User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+codec.UserColumns+` FROM oauth_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var out []*store.User
	for rows.Next() {
		u, err := codec.ScanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	return out, nil
}

// UpdateUser implements store.OAuthStore.
func (s *Store) UpdateUser(ctx context.Context, u *store.User) error {
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_users SET password_hash = ?, roles = ?, mfa_secret = ?, backup_codes = ?, mfa_last_step = ?, updated_at = ? WHERE name = ?`,
		u.PasswordHash, codec.EncodeList(u.Roles), u.MFASecret, codec.EncodeHashes(u.BackupCodes), u.MFALastStep, time.Now().UnixNano(), u.Name)
	return affected(res, err, "update user "+u.Name)
}

// DeleteUser implements store.OAuthStore. The user's consents go with it.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM oauth_users WHERE name = ?`, name)
		if err := affected(res, err, "delete user "+name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_consents WHERE user_name = ?`, name); err != nil {
			return fmt.Errorf("store: delete consents: %w", err)
		}
		return nil
	})
}

// RecordLoginFailure implements store.OAuthStore.
func (s *Store) RecordLoginFailure(ctx context.Context, name string, now time.Time, max int, lockFor time.Duration) (time.Time, error) {
	var locked int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var failed int
		if err := tx.QueryRowContext(ctx, `SELECT failed_logins, locked_until FROM oauth_users WHERE name = ?`, name).Scan(&failed, &locked); err != nil {
			return notFound(err, "record login failure")
		}
		failed++
		if max > 0 && failed >= max {
			failed, locked = 0, now.Add(lockFor).UnixNano()
		}
		_, err := tx.ExecContext(ctx, `UPDATE oauth_users SET failed_logins = ?, locked_until = ? WHERE name = ?`, failed, locked, name)
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	return codec.FromUnixNano(locked), nil
}

// ResetLoginFailures implements store.OAuthStore.
func (s *Store) ResetLoginFailures(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_users SET failed_logins = 0 WHERE name = ?`, name)
	return affected(res, err, "reset login failures")
}

// AdvanceMFAStep implements store.OAuthStore.
func (s *Store) AdvanceMFAStep(ctx context.Context, name string, step int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_users SET mfa_last_step = ? WHERE name = ? AND mfa_last_step < ?`, step, name, step)
	if err != nil {
		return false, fmt.Errorf("store: advance mfa step: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: advance mfa step: %w", err)
	}
	return n == 1, nil
}

// UseBackupCode implements store.OAuthStore.
func (s *Store) UseBackupCode(ctx context.Context, name string, hash []byte) (bool, error) {
	used := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var raw string
		if err := tx.QueryRowContext(ctx, `SELECT backup_codes FROM oauth_users WHERE name = ?`, name).Scan(&raw); err != nil {
			return notFound(err, "use backup code")
		}
		var codes [][]byte
		if err := json.Unmarshal([]byte(raw), &codes); err != nil {
			return fmt.Errorf("store: corrupt backup codes: %w", err)
		}
		i := slices.IndexFunc(codes, func(c []byte) bool { return subtle.ConstantTimeCompare(c, hash) == 1 })
		if i < 0 {
			return nil
		}
		codes = slices.Delete(codes, i, i+1)
		used = true
		_, err := tx.ExecContext(ctx, `UPDATE oauth_users SET backup_codes = ? WHERE name = ?`, codec.EncodeHashes(codes), name)
		return err
	})
	return used, err
}

// CreateClient implements store.OAuthStore.
func (s *Store) CreateClient(ctx context.Context, c *store.OAuthClient) error {
	created := c.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_clients (`+codec.ClientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.SecretHash, c.Name, codec.EncodeList(c.RedirectURIs), codec.EncodeList(c.GrantTypes), c.TokenEndpointAuthMethod,
		codec.EncodeList(c.Scopes), codec.EncodeList(c.Roles), c.Dynamic, codec.UnixNano(created))
	if isUnique(err) {
		return fmt.Errorf("store: client %s: %w", c.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create client: %w", err)
	}
	return nil
}

// GetClient implements store.OAuthStore.
func (s *Store) GetClient(ctx context.Context, id string) (*store.OAuthClient, error) {
	c, err := codec.ScanClient(s.db.QueryRowContext(ctx, `SELECT `+codec.ClientColumns+` FROM oauth_clients WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "get client")
	}
	return c, nil
}

// ListClients implements store.OAuthStore.
func (s *Store) ListClients(ctx context.Context) ([]*store.OAuthClient, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+codec.ClientColumns+` FROM oauth_clients ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list clients: %w", err)
	}
	defer rows.Close()
	var out []*store.OAuthClient
	for rows.Next() {
		c, err := codec.ScanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list clients: %w", err)
	}
	return out, nil
}

// DeleteClient implements store.OAuthStore.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM oauth_clients WHERE id = ?`, id)
	return affected(res, err, "delete client "+id)
}

// CountDynamicClients implements store.OAuthStore.
func (s *Store) CountDynamicClients(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM oauth_clients WHERE dynamic = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count clients: %w", err)
	}
	return n, nil
}

// CreateAuthCode implements store.OAuthStore.
func (s *Store) CreateAuthCode(ctx context.Context, c *store.AuthCode) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_codes (`+codec.CodeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Hash, c.FamilyID, c.ClientID, c.RedirectURI, c.Subject, codec.EncodeList(c.Scopes), c.Resource, c.CodeChallenge,
		codec.UnixNano(c.AuthTime), codec.UnixNano(c.MFATime), codec.UnixNano(c.CreatedAt), codec.UnixNano(c.ExpiresAt), codec.UnixNano(c.UsedAt))
	if isUnique(err) {
		return fmt.Errorf("store: authorization code: %w", store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create authorization code: %w", err)
	}
	return nil
}

// ConsumeAuthCode implements store.OAuthStore.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time) (*store.AuthCode, error) {
	var code *store.AuthCode
	var used bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		c, err := codec.ScanCode(tx.QueryRowContext(ctx, `SELECT `+codec.CodeColumns+` FROM oauth_codes WHERE hash = ?`, hash))
		if err != nil {
			return notFound(err, "consume authorization code")
		}
		code = c
		if !c.UsedAt.IsZero() {
			used = true
			return nil
		}
		// Compare-and-set: the write lock taken by BEGIN IMMEDIATE already
		// serializes redemptions; the used_at = 0 guard keeps the update
		// single-use even if it did not.
		res, err := tx.ExecContext(ctx, `UPDATE oauth_codes SET used_at = ? WHERE hash = ? AND used_at = 0`, codec.UnixNano(now), hash)
		if err != nil {
			return fmt.Errorf("store: consume authorization code: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: consume authorization code: %w", err)
		} else if n != 1 {
			return errors.New("store: consume authorization code: the code was redeemed concurrently")
		}
		c.UsedAt = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	if used {
		return code, fmt.Errorf("store: authorization code: %w", store.ErrAlreadyUsed)
	}
	return code, nil
}

func insertRefresh(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, t *store.RefreshToken) error {
	_, err := ex.ExecContext(ctx, `INSERT INTO oauth_refresh_tokens (`+codec.RefreshColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Hash, t.FamilyID, t.ClientID, t.Subject, codec.EncodeList(t.Scopes), t.Resource, codec.UnixNano(t.AuthTime), codec.UnixNano(t.MFATime),
		codec.UnixNano(t.CreatedAt), codec.UnixNano(t.ExpiresAt), codec.UnixNano(t.UsedAt), codec.UnixNano(t.RevokedAt), t.CertThumbprint)
	if isUnique(err) {
		return fmt.Errorf("store: refresh token: %w", store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create refresh token: %w", err)
	}
	return nil
}

// CreateRefreshToken implements store.OAuthStore.
func (s *Store) CreateRefreshToken(ctx context.Context, t *store.RefreshToken) error {
	return insertRefresh(ctx, s.db, t)
}

// GetRefreshToken implements store.OAuthStore.
func (s *Store) GetRefreshToken(ctx context.Context, hash []byte) (*store.RefreshToken, error) {
	t, err := codec.ScanRefresh(s.db.QueryRowContext(ctx, `SELECT `+codec.RefreshColumns+` FROM oauth_refresh_tokens WHERE hash = ?`, hash))
	if err != nil {
		return nil, notFound(err, "get refresh token")
	}
	return t, nil
}

// RotateRefreshToken implements store.OAuthStore.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, next *store.RefreshToken, now time.Time) (*store.RefreshToken, error) {
	var old *store.RefreshToken
	var outcome error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		t, err := codec.ScanRefresh(tx.QueryRowContext(ctx, `SELECT `+codec.RefreshColumns+` FROM oauth_refresh_tokens WHERE hash = ?`, oldHash))
		if err != nil {
			return notFound(err, "rotate refresh token")
		}
		old = t
		switch {
		case !t.RevokedAt.IsZero():
			outcome = store.ErrRevoked
			return nil
		case !t.UsedAt.IsZero():
			// Reuse: someone holds a copy. End the whole family, the
			// thief's tokens and the rightful client's alike.
			outcome = store.ErrAlreadyUsed
			_, err := tx.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at = 0`, codec.UnixNano(now), t.FamilyID)
			return err
		}
		if next == nil || next.FamilyID != t.FamilyID || bytes.Equal(next.Hash, oldHash) { // ct:public: a sanity check of two digests the server made
			return errors.New("store: rotate refresh token: the next token must be new and of the same family")
		}
		// Compare-and-set, as in ConsumeAuthCode.
		res, err := tx.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET used_at = ? WHERE hash = ? AND used_at = 0 AND revoked_at = 0`, codec.UnixNano(now), oldHash)
		if err != nil {
			return fmt.Errorf("store: rotate refresh token: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: rotate refresh token: %w", err)
		} else if n != 1 {
			return errors.New("store: rotate refresh token: the token was rotated concurrently")
		}
		t.UsedAt = now
		return insertRefresh(ctx, tx, next)
	})
	if err != nil {
		return nil, err
	}
	if outcome != nil {
		return old, fmt.Errorf("store: refresh token: %w", outcome)
	}
	return old, nil
}

// RevokeRefreshFamily implements store.OAuthStore.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at = 0`, codec.UnixNano(at), familyID); err != nil {
		return fmt.Errorf("store: revoke refresh family: %w", err)
	}
	return nil
}

// RevokeUserRefreshTokens implements store.OAuthStore.
func (s *Store) RevokeUserRefreshTokens(ctx context.Context, subject string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE oauth_refresh_tokens SET revoked_at = ? WHERE subject = ? AND revoked_at = 0`, codec.UnixNano(at), subject); err != nil {
		return fmt.Errorf("store: revoke user refresh tokens: %w", err)
	}
	return nil
}

// GrantConsent implements store.OAuthStore.
func (s *Store) GrantConsent(ctx context.Context, user, clientID string, scopes []string, at time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var raw string
		var have []string
		err := tx.QueryRowContext(ctx, `SELECT scopes FROM oauth_consents WHERE user_name = ? AND client_id = ?`, user, clientID).Scan(&raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: grant consent: %w", err)
		default:
			if have, err = codec.DecodeList(raw, "consent scopes"); err != nil {
				return err
			}
		}
		merged := slices.Compact(slices.Sorted(slices.Values(append(have, scopes...))))
		_, err = tx.ExecContext(ctx, `INSERT INTO oauth_consents (user_name, client_id, scopes, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT(user_name, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`,
			user, clientID, codec.EncodeList(merged), codec.UnixNano(at))
		if err != nil {
			return fmt.Errorf("store: grant consent: %w", err)
		}
		return nil
	})
}

// ConsentedScopes implements store.OAuthStore.
func (s *Store) ConsentedScopes(ctx context.Context, user, clientID string) ([]string, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT scopes FROM oauth_consents WHERE user_name = ? AND client_id = ?`, user, clientID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: consented scopes: %w", err)
	}
	return codec.DecodeList(raw, "consent scopes")
}

// CreateSigningKey implements store.OAuthStore.
func (s *Store) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	created := k.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_signing_keys (id, algorithm, private_key, created_at, retired_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, k.PrivateKeyPEM, codec.UnixNano(created), codec.UnixNano(k.RetiredAt))
	if isUnique(err) {
		return fmt.Errorf("store: signing key %s: %w", k.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create signing key: %w", err)
	}
	return nil
}

// ListSigningKeys implements store.OAuthStore.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, algorithm, private_key, created_at, retired_at FROM oauth_signing_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list signing keys: %w", err)
	}
	defer rows.Close()
	var out []*store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var created, retired int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateKeyPEM, &created, &retired); err != nil {
			return nil, fmt.Errorf("store: list signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt = codec.FromUnixNano(created), codec.FromUnixNano(retired)
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list signing keys: %w", err)
	}
	return out, nil
}

// SetSigningKeyMaterial implements store.OAuthStore.
func (s *Store) SetSigningKeyMaterial(ctx context.Context, id string, privateKeyPEM []byte) error {
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_signing_keys SET private_key = ? WHERE id = ?`, privateKeyPEM, id)
	return affected(res, err, "set signing key "+id)
}

// RetireSigningKey implements store.OAuthStore.
func (s *Store) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_signing_keys SET retired_at = CASE WHEN retired_at = 0 THEN ? ELSE retired_at END WHERE id = ?`, codec.UnixNano(at), id)
	return affected(res, err, "retire signing key "+id)
}

// PurgeExpiredOAuth implements store.OAuthStore.
func (s *Store) PurgeExpiredOAuth(ctx context.Context, now time.Time) (int, error) {
	total := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"oauth_codes", "oauth_refresh_tokens"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE expires_at < ?`, codec.UnixNano(now))
			if err != nil {
				return fmt.Errorf("store: purge %s: %w", table, err)
			}
			n, _ := res.RowsAffected()
			total += int(n)
		}
		return nil
	})
	return total, err
}
