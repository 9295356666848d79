// Package store defines mcpguard's persistent state: API keys, revoked
// token ids, audit records and the OAuth authorization server's state.
// Backends live in subpackages (store/sqlite); every backend must pass the
// conformance suites in store/storetest.
//
// The interface lives here rather than in package guard because the pipeline
// never touches the store directly: authenticators do. Keeping it apart lets a
// program that secures its own go-sdk server with, say, JWTs alone import
// guard without any database driver.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a created record's id is already taken.
var ErrExists = errors.New("already exists")

// APIKey is an API key as stored: never the secret, only its hash.
type APIKey struct {
	// ID is the public 16-hex-digit identifier embedded in the key.
	ID string
	// Name identifies the key's owner; it becomes the principal's subject.
	Name string
	// Hash is the SHA-256 digest of the full key string.
	Hash []byte
	// Roles and Scopes are granted to whoever presents the key.
	Roles  []string
	Scopes []string
	// CreatedAt is when the key was created.
	CreatedAt time.Time
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time
	// LastUsedAt is the last successful use, recorded in batches; zero if
	// never used (or not yet flushed).
	LastUsedAt time.Time
	// RevokedAt is when the key was revoked; zero if it was not.
	RevokedAt time.Time
	// PreviousHash is the digest of the secret the key had before its last
	// rotation; it keeps working until PreviousExpiresAt, so that clients
	// can switch to the new secret without downtime. Nil when the key was
	// never rotated or the grace period was zero.
	PreviousHash      []byte
	PreviousExpiresAt time.Time
}

// Revoked reports whether the key has been revoked.
func (k *APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// Expired reports whether the key has expired at time now.
func (k *APIKey) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// Store is mcpguard's persistent state. Implementations must be safe for
// concurrent use and must make each method atomic: a crash mid-call leaves
// either the old state or the new one.
type Store interface {
	OAuthStore
	SecretStore
	ToolPinStore
	UpstreamStatusStore
	SessionStore

	// CreateAPIKey stores a new key; ErrExists if its ID is taken.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKey returns the key with id, or ErrNotFound.
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns all keys, newest first.
	ListAPIKeys(ctx context.Context) ([]*APIKey, error)
	// RevokeAPIKey marks the key revoked at time at; ErrNotFound if absent.
	// Revoking a revoked key keeps the first revocation time.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// RotateAPIKey replaces the key's secret digest with newHash; the old
	// digest keeps working until graceUntil (zero: not at all). ErrNotFound
	// if absent; a revoked key cannot be rotated.
	RotateAPIKey(ctx context.Context, id string, newHash []byte, graceUntil time.Time) error
	// TouchAPIKeys records last-used times for many keys in one write.
	// Unknown ids are ignored; a time older than the stored one is ignored.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error

	// RevokeToken adds a JWT id to the revocation list until expiresAt
	// (after which the token is expired anyway and the entry may be purged).
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// TokenRevoked reports whether jti is on the revocation list.
	TokenRevoked(ctx context.Context, jti string) (bool, error)

	// AppendAudit stores a batch of audit records in one transaction: all
	// of them or none. Every record must pass [ValidateAuditRecord]; a batch
	// longer than [MaxAuditBatch] is refused. A record read back by
	// QueryAudit equals the record appended, field for field (Args as
	// decoded from JSON).
	AppendAudit(ctx context.Context, recs []guard.Record) error
	// QueryAudit returns the records matching q, newest first (records with
	// the same time: the last appended first), at most q's effective limit
	// (see [AuditQuery.EffectiveLimit]). A query that fails
	// [AuditQuery.Validate] is refused with an error wrapping
	// ErrInvalidQuery.
	QueryAudit(ctx context.Context, q AuditQuery) ([]guard.Record, error)

	// Close releases the store's resources.
	Close() error
}

// Audit storage bounds.
const (
	// DefaultAuditLimit is the number of records a query with Limit 0
	// returns at most.
	DefaultAuditLimit = 100
	// MaxAuditLimit bounds AuditQuery.Limit.
	MaxAuditLimit = 10_000
	// MaxAuditBatch bounds the records of one AppendAudit call.
	MaxAuditBatch = 10_000
	// MaxAuditRecordBytes bounds one record's JSON encoding.
	MaxAuditRecordBytes = 1 << 20
	// MaxAuditFilterBytes bounds each string filter of an AuditQuery.
	MaxAuditFilterBytes = 1024
)

// ErrInvalidQuery marks an AuditQuery that fails validation.
var ErrInvalidQuery = errors.New("invalid audit query")

// ErrInvalidRecord marks an audit record a store refuses to append.
var ErrInvalidRecord = errors.New("invalid audit record")

// AuditQuery selects audit records. Its zero value selects the newest
// [DefaultAuditLimit] records.
type AuditQuery struct {
	// Since, when set, selects records at or after it.
	Since time.Time
	// Until, when set, selects records strictly before it.
	Until time.Time
	// Decision, when set, selects records with that decision, ignoring case
	// ("denied" selects DENIED). It must be one of the guard outcomes.
	Decision string
	// User, when set, selects records whose user (principal subject) is
	// exactly User.
	User string
	// Tool, when set, selects calls of that tool: records whose target is
	// exactly Tool and whose method is tools/call or unknown (empty), as
	// audit.Filter does.
	Tool string
	// Limit is the maximum number of records returned: 0 means
	// [DefaultAuditLimit]; it may not exceed [MaxAuditLimit].
	Limit int
}

// outcomes are the decisions an AuditQuery may select.
var outcomes = []guard.Outcome{guard.Allowed, guard.Denied, guard.AuthFailed, guard.RateLimited, guard.Failed}

// Validate reports whether q is a query a store accepts. Its errors wrap
// ErrInvalidQuery.
func (q AuditQuery) Validate() error {
	if q.Limit < 0 || q.Limit > MaxAuditLimit {
		return fmt.Errorf("%w: limit %d out of range [0, %d]", ErrInvalidQuery, q.Limit, MaxAuditLimit)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return fmt.Errorf("%w: since (%s) is not before until (%s)", ErrInvalidQuery,
			q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano))
	}
	if (!q.Since.IsZero() && !representable(q.Since)) || (!q.Until.IsZero() && !representable(q.Until)) {
		return fmt.Errorf("%w: since or until is out of the supported time range", ErrInvalidQuery)
	}
	if len(q.Decision) > MaxAuditFilterBytes || len(q.User) > MaxAuditFilterBytes || len(q.Tool) > MaxAuditFilterBytes {
		return fmt.Errorf("%w: a decision, user or tool filter is longer than %d bytes", ErrInvalidQuery, MaxAuditFilterBytes)
	}
	if q.Decision != "" && q.NormalizedDecision() == "" {
		return fmt.Errorf("%w: unknown decision (want one of ALLOWED, DENIED, AUTH_FAILED, RATE_LIMITED, ERROR)", ErrInvalidQuery)
	}
	return nil
}

// NormalizedDecision returns the guard outcome q.Decision names, ignoring
// case, or "" when q.Decision is empty or names none.
func (q AuditQuery) NormalizedDecision() guard.Outcome {
	for _, o := range outcomes {
		if strings.EqualFold(q.Decision, string(o)) {
			return o
		}
	}
	return ""
}

// EffectiveLimit is the number of records q returns at most: Limit, or
// [DefaultAuditLimit] when Limit is 0. Call it on a validated query.
func (q AuditQuery) EffectiveLimit() int {
	if q.Limit <= 0 {
		return DefaultAuditLimit
	}
	return min(q.Limit, MaxAuditLimit)
}

// ValidateAuditRecord reports whether a store accepts r: it needs a time
// (representable as int64 nanoseconds since 1970, the range of
// time.Time.UnixNano) and a decision. Its errors wrap ErrInvalidRecord.
// Size is checked by the backend on the encoded record.
func ValidateAuditRecord(r *guard.Record) error {
	switch {
	case r.Time.IsZero():
		return fmt.Errorf("%w: no time", ErrInvalidRecord)
	case !representable(r.Time):
		return fmt.Errorf("%w: time out of the supported range", ErrInvalidRecord)
	case r.Decision == "":
		return fmt.Errorf("%w: no decision", ErrInvalidRecord)
	}
	return nil
}

// representable reports whether t survives a round trip through
// time.Time.UnixNano.
func representable(t time.Time) bool {
	return time.Unix(0, t.UnixNano()).Equal(t)
}
