package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/oauth"
	"github.com/mcpguard/mcpguard/store"
)

// Bounds on what the user and client commands accept.
const (
	maxUserName     = 128
	minPasswordLen  = 12
	backupCodeCount = 10
)

// UserOptions are the inputs of `mcpguard users add` and `users passwd`.
type UserOptions struct {
	DataDir string
	Name    string
	Roles   []string
	// Password is the new password, read by the CLI without echo.
	Password string
	// KnownRoles, when non-nil, are the roles the configuration defines.
	KnownRoles []string
}

func checkUserName(name string) error {
	if name == "" || len(name) > maxUserName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("a user name must be 1 to %d printable characters without spaces", maxUserName)
	}
	return nil
}

func checkPassword(pw string) error {
	if utf8.RuneCountInString(pw) < minPasswordLen {
		return fmt.Errorf("the password must be at least %d characters", minPasswordLen)
	}
	return nil
}

func checkRoles(roles, known []string) error {
	if len(roles) == 0 {
		return errors.New("a user needs at least one --role")
	}
	for _, r := range roles {
		if known != nil && !slices.Contains(known, r) {
			return fmt.Errorf("unknown role %q: the configuration defines %s", r, strings.Join(known, ", "))
		}
	}
	return nil
}

// UsersAdd creates a user who signs in to the authorization server.
func UsersAdd(ctx context.Context, out io.Writer, o UserOptions) error {
	if err := checkUserName(o.Name); err != nil {
		return err
	}
	if err := checkRoles(o.Roles, o.KnownRoles); err != nil {
		return err
	}
	if err := checkPassword(o.Password); err != nil {
		return err
	}
	hash, err := password.Hash(o.Password)
	if err != nil {
		return err
	}
	s, err := OpenStore(ctx, o.DataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.CreateUser(ctx, &store.User{Name: o.Name, PasswordHash: hash, Roles: o.Roles}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("user %q exists (change the password with `mcpguard users passwd`)", o.Name)
		}
		return err
	}
	fmt.Fprintf(out, "Created user %s (roles: %s). Enrol MFA with `mcpguard users mfa enroll %s`.\n", printable(o.Name), strings.Join(o.Roles, ", "), printable(o.Name))
	return nil
}

// UsersPasswd sets a user's password and ends every refresh token issued
// to them, so that a stolen session does not outlive a password change.
func UsersPasswd(ctx context.Context, out io.Writer, o UserOptions) error {
	if err := checkPassword(o.Password); err != nil {
		return err
	}
	return updateUser(ctx, o.DataDir, o.Name, func(u *store.User) (string, error) {
		hash, err := password.Hash(o.Password)
		if err != nil {
			return "", err
		}
		u.PasswordHash = hash
		return "Password changed for " + printable(u.Name) + "; their refresh tokens are revoked.", nil
	}, true, out)
}

// UsersSetRoles replaces a user's roles; their refresh tokens are revoked
// so that the next tokens carry the new roles.
func UsersSetRoles(ctx context.Context, out io.Writer, o UserOptions) error {
	if err := checkRoles(o.Roles, o.KnownRoles); err != nil {
		return err
	}
	return updateUser(ctx, o.DataDir, o.Name, func(u *store.User) (string, error) {
		u.Roles = o.Roles
		return "Roles of " + printable(u.Name) + " set to " + strings.Join(o.Roles, ", ") + "; their refresh tokens are revoked.", nil
	}, true, out)
}

// updateUser reads, changes and writes one user, then optionally revokes
// their refresh tokens.
func updateUser(ctx context.Context, dataDir, name string, change func(*store.User) (string, error), revoke bool, out io.Writer) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	return changeUser(ctx, s, name, change, revoke, out)
}

// changeUser reads, changes and writes one user in s, then optionally
// revokes their refresh tokens.
func changeUser(ctx context.Context, s store.Store, name string, change func(*store.User) (string, error), revoke bool, out io.Writer) error {
	u, err := s.GetUser(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user %q (see `mcpguard users list`)", name)
		}
		return err
	}
	msg, err := change(u)
	if err != nil {
		return err
	}
	if err := s.UpdateUser(ctx, u); err != nil {
		return err
	}
	if revoke {
		if err := s.RevokeUserRefreshTokens(ctx, u.Name, time.Now()); err != nil {
			return fmt.Errorf("revoke refresh tokens: %w", err)
		}
	}
	fmt.Fprintln(out, msg)
	return nil
}

// UsersRemove deletes a user and revokes their refresh tokens.
func UsersRemove(ctx context.Context, out io.Writer, dataDir, name string) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.RevokeUserRefreshTokens(ctx, name, time.Now()); err != nil {
		return err
	}
	if err := s.DeleteUser(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user %q (see `mcpguard users list`)", name)
		}
		return err
	}
	fmt.Fprintf(out, "Removed user %s; their refresh tokens are revoked.\n", printable(name))
	return nil
}

// UsersList writes a table of users, never their secrets.
func UsersList(ctx context.Context, out io.Writer, dataDir string, now time.Time) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	users, err := s.ListUsers(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLES\tMFA\tBACKUP CODES\tCREATED\tSTATUS")
	for _, u := range users {
		mfa := "no"
		if len(u.MFASecret) > 0 {
			mfa = "yes"
		}
		status := "active"
		if u.LockedUntil.After(now) {
			status = "locked until " + u.LockedUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", printable(u.Name), strings.Join(u.Roles, ","), mfa, len(u.BackupCodes), u.CreatedAt.Format(time.RFC3339), status)
	}
	return tw.Flush()
}

// UsersMFAEnroll gives a user a new TOTP secret and backup codes and prints
// them once: the otpauth URI, its QR code for the terminal, and the codes.
// With a master key configured, the secret is stored sealed.
func UsersMFAEnroll(ctx context.Context, out io.Writer, cfg *config.Config, env func(string) (string, bool), name, issuer string) error {
	s, err := openStoreFor(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer s.Close()
	return changeUser(ctx, s, name, func(u *store.User) (string, error) {
		e, err := totp.Enroll(issuer, u.Name)
		if err != nil {
			return "", err
		}
		codes, hashes, err := totp.NewBackupCodes(backupCodeCount)
		if err != nil {
			return "", err
		}
		qr, err := totp.QR(e.URI)
		if err != nil {
			return "", err
		}
		u.MFASecret, u.BackupCodes, u.MFALastStep = e.Secret, hashes, 0
		var b strings.Builder
		fmt.Fprintf(&b, "MFA enrolled for %s. Scan this with an authenticator app, or enter the URI:\n\n%s\n%s\n\n", printable(u.Name), qr, e.URI)
		b.WriteString("Backup codes (each works once; store them offline):\n")
		for _, c := range codes {
			fmt.Fprintf(&b, "  %s\n", c)
		}
		b.WriteString("\nThese are shown only now. Re-enrolling replaces them.")
		return b.String(), nil
	}, false, out)
}

// UsersMFADisable removes a user's MFA enrolment.
func UsersMFADisable(ctx context.Context, out io.Writer, dataDir, name string) error {
	return updateUser(ctx, dataDir, name, func(u *store.User) (string, error) {
		u.MFASecret, u.BackupCodes, u.MFALastStep = nil, nil, 0
		return "MFA removed for " + printable(u.Name) + ".", nil
	}, false, out)
}

// ClientOptions are the inputs of `mcpguard clients add`.
type ClientOptions struct {
	DataDir      string
	Name         string
	RedirectURIs []string
	// Confidential clients get a secret and may use client_credentials
	// with Roles.
	Confidential bool
	Roles        []string
	Scopes       []string
	KnownRoles   []string
}

// ClientsAdd pre-registers an OAuth client and prints its id (and secret,
// once).
func ClientsAdd(ctx context.Context, out io.Writer, o ClientOptions) error {
	if o.Name == "" || len(o.Name) > 200 {
		return errors.New("--name of 1 to 200 characters is required")
	}
	for _, u := range o.RedirectURIs {
		if err := oauth.CheckRedirectURI(u); err != nil {
			return fmt.Errorf("redirect URI %q: %w", u, err)
		}
	}
	if !o.Confidential && len(o.RedirectURIs) == 0 {
		return errors.New("a public client needs at least one --redirect-uri")
	}
	if len(o.Roles) > 0 {
		if !o.Confidential {
			return errors.New("--role is for confidential clients (client_credentials); add --confidential")
		}
		if err := checkRoles(o.Roles, o.KnownRoles); err != nil {
			return err
		}
	}
	c := &store.OAuthClient{
		ID:                      "mcpc_" + randomHex(12),
		Name:                    o.Name,
		RedirectURIs:            o.RedirectURIs,
		TokenEndpointAuthMethod: "none",
		Scopes:                  o.Scopes,
		Roles:                   o.Roles,
	}
	if len(o.RedirectURIs) > 0 {
		c.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	var secret string
	if o.Confidential {
		secret, c.SecretHash = oauth.NewClientSecret()
		c.TokenEndpointAuthMethod = "client_secret_basic"
		c.GrantTypes = append(c.GrantTypes, "client_credentials")
	}
	s, err := OpenStore(ctx, o.DataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.CreateClient(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(out, "Registered client %s (%s)\n  client_id: %s\n", printable(c.Name), strings.Join(c.GrantTypes, ", "), c.ID)
	if secret != "" {
		fmt.Fprintf(out, "  client_secret: %s\n\nStore the secret now: it is shown only once, and only its hash is kept.\n", secret)
	}
	return nil
}

// ClientsList writes a table of registered clients.
func ClientsList(ctx context.Context, out io.Writer, dataDir string) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	clients, err := s.ListClients(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tNAME\tAUTH\tREDIRECT URIS\tREGISTERED\tCREATED")
	for _, c := range clients {
		how := "cli"
		if c.Dynamic {
			how = "dynamic"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(c.ID), printable(c.Name), c.TokenEndpointAuthMethod,
			dash(printable(strings.Join(c.RedirectURIs, " "))), how, c.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// ClientsRemove deletes a registered client.
func ClientsRemove(ctx context.Context, out io.Writer, dataDir, id string) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.DeleteClient(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no client %q (see `mcpguard clients list`)", id)
		}
		return err
	}
	fmt.Fprintf(out, "Removed client %s\n", printable(id))
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
