package store

import (
	"context"
	"errors"
	"time"
)

// Errors of the OAuth methods.
var (
	// ErrAlreadyUsed is returned when a single-use value (an authorization
	// code, a refresh token, a backup code) is presented a second time. The
	// record is returned along with it so that the caller can revoke what
	// was issued from the first use.
	ErrAlreadyUsed = errors.New("already used")
	// ErrRevoked is returned when a refresh token's family was revoked.
	ErrRevoked = errors.New("revoked")
)

// User is a person who signs in to mcpguard's authorization server. Its
// Name is the subject of the tokens issued to it.
type User struct {
	// Name is the unique login name.
	Name string
	// PasswordHash is the argon2id hash in PHC string form
	// ($argon2id$v=19$m=…,t=…,p=…$salt$hash); never the password.
	PasswordHash string
	// Roles are the roles the user holds (before inheritance).
	Roles []string
	// MFASecret is the raw TOTP secret (RFC 6238); nil when the user has
	// no MFA enrolled.
	MFASecret []byte
	// BackupCodes are the SHA-256 digests of the user's unused backup
	// codes.
	BackupCodes [][]byte
	// MFALastStep is the last TOTP time step accepted, so that a code is
	// accepted at most once.
	MFALastStep int64
	// FailedLogins counts consecutive failed password or MFA attempts.
	FailedLogins int
	// LockedUntil, when in the future, refuses every login attempt.
	LockedUntil time.Time
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OAuthClient is a client registered with the authorization server:
// pre-registered with `mcpguard clients add` or registered dynamically
// (RFC 7591). Clients identified by a metadata document URL are not stored.
type OAuthClient struct {
	// ID is the client_id.
	ID string
	// SecretHash is the SHA-256 digest of the client secret; nil for a
	// public client (token_endpoint_auth_method "none").
	SecretHash []byte
	// Name is shown on the consent page.
	Name string
	// RedirectURIs are matched exactly.
	RedirectURIs []string
	// GrantTypes are the grants the client may use.
	GrantTypes []string
	// TokenEndpointAuthMethod is "none", "client_secret_basic" or
	// "client_secret_post".
	TokenEndpointAuthMethod string
	// Scopes, when not empty, bounds the scopes the client may request.
	Scopes []string
	// Roles are the roles granted to the client itself in the
	// client_credentials grant.
	Roles []string
	// Dynamic is true for clients registered through RFC 7591.
	Dynamic bool
	// CreatedAt is set by the store.
	CreatedAt time.Time
}

// AuthCode is an issued authorization code, stored by its digest.
type AuthCode struct {
	// Hash is the SHA-256 digest of the code.
	Hash []byte
	// FamilyID names the refresh-token family the code's exchange creates,
	// so that a replayed code can revoke what the first exchange issued.
	FamilyID    string
	ClientID    string
	RedirectURI string
	Subject     string
	Scopes      []string
	// Resource is the RFC 8707 resource indicator the code is bound to.
	Resource string
	// CodeChallenge is the PKCE S256 challenge.
	CodeChallenge string
	// AuthTime is when the user authenticated; MFATime when they passed
	// MFA (zero if they did not).
	AuthTime  time.Time
	MFATime   time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is when the code was exchanged; zero if it was not.
	UsedAt time.Time
}

// RefreshToken is an issued refresh token, stored by its digest. Tokens
// issued by rotating one another form a family; replaying a rotated token
// revokes the whole family.
type RefreshToken struct {
	// Hash is the SHA-256 digest of the token.
	Hash     []byte
	FamilyID string
	ClientID string
	Subject  string
	Scopes   []string
	Resource string
	AuthTime time.Time
	MFATime  time.Time
	// CreatedAt and ExpiresAt bound the token's validity.
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is when the token was rotated; zero while it is current.
	UsedAt time.Time
	// RevokedAt is when the token's family was revoked; zero if it was not.
	RevokedAt time.Time
	// CertThumbprint, when set, binds the token to the client certificate
	// with this RFC 8705 "x5t#S256" thumbprint: it may only be redeemed
	// over a connection presenting that certificate.
	CertThumbprint string
}

// SigningKey is a private key the authorization server signs access tokens
// with.
type SigningKey struct {
	// ID is the key id (JWS "kid").
	ID string
	// Algorithm is the JWS algorithm, e.g. "ES256".
	Algorithm string
	// PrivateKeyPEM is the PKCS #8 private key.
	PrivateKeyPEM []byte
	CreatedAt     time.Time
	// RetiredAt, when set, is when the key stopped signing; it still
	// verifies until its tokens have expired.
	RetiredAt time.Time
}

// OAuthStore is the state of mcpguard's authorization server. Every method
// is atomic; single-use values are consumed with a compare-and-set, so that
// two replicas racing to redeem one code cannot both succeed.
type OAuthStore interface {
	// CreateUser stores a new user; ErrExists if the name is taken.
	CreateUser(ctx context.Context, u *User) error
	// GetUser returns the user, or ErrNotFound.
	GetUser(ctx context.Context, name string) (*User, error)
	// ListUsers returns every user, by name.
	ListUsers(ctx context.Context) ([]*User, error)
	// UpdateUser replaces a user's password hash, roles and MFA settings
	// (MFASecret, BackupCodes, MFALastStep); ErrNotFound if absent.
	UpdateUser(ctx context.Context, u *User) error
	// DeleteUser removes a user; ErrNotFound if absent.
	DeleteUser(ctx context.Context, name string) error
	// RecordLoginFailure counts one failed attempt at now; when the count
	// reaches max it sets LockedUntil to now+lockFor and resets the count.
	// It returns the user's LockedUntil afterwards. ErrNotFound if absent.
	RecordLoginFailure(ctx context.Context, name string, now time.Time, max int, lockFor time.Duration) (time.Time, error)
	// ResetLoginFailures clears the failure count after a success.
	ResetLoginFailures(ctx context.Context, name string) error
	// AdvanceMFAStep records step as the last TOTP step used, only if it is
	// greater than the stored one; it reports whether it was. A false
	// answer means the code was already used.
	AdvanceMFAStep(ctx context.Context, name string, step int64) (bool, error)
	// UseBackupCode removes the backup code with digest hash from the user
	// and reports whether it was there.
	UseBackupCode(ctx context.Context, name string, hash []byte) (bool, error)

	// CreateClient stores a client; ErrExists if the id is taken.
	CreateClient(ctx context.Context, c *OAuthClient) error
	// GetClient returns the client, or ErrNotFound.
	GetClient(ctx context.Context, id string) (*OAuthClient, error)
	// ListClients returns every client, newest first.
	ListClients(ctx context.Context) ([]*OAuthClient, error)
	// DeleteClient removes a client; ErrNotFound if absent.
	DeleteClient(ctx context.Context, id string) error
	// CountDynamicClients returns the number of dynamically registered
	// clients, to bound registration.
	CountDynamicClients(ctx context.Context) (int, error)

	// CreateAuthCode stores a new code; ErrExists if its hash is taken.
	CreateAuthCode(ctx context.Context, c *AuthCode) error
	// ConsumeAuthCode marks the code with digest hash used at now and
	// returns it. A code already used is returned with ErrAlreadyUsed; an
	// unknown code gives ErrNotFound. Expiry is the caller's check.
	ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time) (*AuthCode, error)

	// CreateRefreshToken stores a new refresh token.
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	// GetRefreshToken returns the token with digest hash, or ErrNotFound.
	GetRefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error)
	// RotateRefreshToken atomically marks the token with digest oldHash used
	// at now and stores next in its family. When the old token was already
	// used it revokes the whole family and returns the old token with
	// ErrAlreadyUsed; when the family is revoked it returns ErrRevoked;
	// ErrNotFound when unknown. Expiry is the caller's check.
	RotateRefreshToken(ctx context.Context, oldHash []byte, next *RefreshToken, now time.Time) (*RefreshToken, error)
	// RevokeRefreshFamily revokes every token of a family at at.
	RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error
	// RevokeUserRefreshTokens revokes every refresh token of a subject at
	// at (all clients), e.g. when the user's password changes.
	RevokeUserRefreshTokens(ctx context.Context, subject string, at time.Time) error

	// GrantConsent records that user allowed client the scopes (added to
	// any earlier grant).
	GrantConsent(ctx context.Context, user, clientID string, scopes []string, at time.Time) error
	// ConsentedScopes returns the scopes user has allowed client; empty
	// when none.
	ConsentedScopes(ctx context.Context, user, clientID string) ([]string, error)

	// CreateSigningKey stores a new signing key; ErrExists if the id is
	// taken.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// ListSigningKeys returns every signing key, newest first.
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// SetSigningKeyMaterial replaces a key's stored private key (the same
	// key, sealed anew); ErrNotFound if absent.
	SetSigningKeyMaterial(ctx context.Context, id string, privateKeyPEM []byte) error
	// RetireSigningKey marks a key retired at at; ErrNotFound if absent.
	RetireSigningKey(ctx context.Context, id string, at time.Time) error

	// PurgeExpiredOAuth deletes codes and refresh tokens expired before
	// now and returns how many rows it removed.
	PurgeExpiredOAuth(ctx context.Context, now time.Time) (int, error)
}
