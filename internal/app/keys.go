package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/internal/safetext"
	"github.com/mcpguard/mcpguard/oauth"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/postgres"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

// StoreFile is the store's file name inside the data directory.
const StoreFile = "mcpguard.db"

// OpenStore opens the store at loc (config.Config.StoreLocation): a
// postgres:// URL, or the data directory holding the SQLite file.
func OpenStore(ctx context.Context, loc string) (store.Store, error) {
	if isPostgres(loc) {
		return postgres.Open(ctx, loc)
	}
	return sqlite.Open(ctx, filepath.Join(loc, StoreFile))
}

func isPostgres(loc string) bool {
	return strings.HasPrefix(loc, "postgres://") || strings.HasPrefix(loc, "postgresql://")
}

// KeyCreateOptions are the inputs of `mcpguard keys create`.
type KeyCreateOptions struct {
	DataDir string
	Name    string
	Roles   []string
	Scopes  []string
	Expires time.Duration
	// KnownRoles, when non-nil, are the roles the configuration defines; an
	// unknown role is refused so that a typo cannot create a useless key.
	KnownRoles []string
}

// KeysCreate creates a key and writes it, once, to out.
func KeysCreate(ctx context.Context, out io.Writer, o KeyCreateOptions) error {
	if len(o.Roles) == 0 {
		return errors.New("a key needs at least one --role")
	}
	for _, r := range o.Roles {
		if o.KnownRoles != nil && !slices.Contains(o.KnownRoles, r) {
			return fmt.Errorf("unknown role %q: the configuration defines %s", r, strings.Join(o.KnownRoles, ", "))
		}
	}
	s, err := OpenStore(ctx, o.DataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	key, rec, err := apikey.Create(ctx, s, apikey.CreateOptions{Name: o.Name, Roles: o.Roles, Scopes: o.Scopes, TTL: o.Expires})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Created API key %s for %s (roles: %s", rec.ID, rec.Name, strings.Join(rec.Roles, ", "))
	if !rec.ExpiresAt.IsZero() {
		fmt.Fprintf(out, "; expires %s", rec.ExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprintf(out, ")\n\n  %s\n\nStore it now: it is shown only once, and only its hash is kept.\n", key)
	return nil
}

// KeysList writes a table of keys, never their secrets.
func KeysList(ctx context.Context, out io.Writer, dataDir string, now time.Time) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	keys, err := s.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLES\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tSTATUS")
	for _, k := range keys {
		status := "active"
		switch {
		case k.Revoked():
			status = "revoked " + k.RevokedAt.Format(time.RFC3339)
		case k.Expired(now):
			status = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, printable(k.Name), strings.Join(k.Roles, ","), dash(strings.Join(k.Scopes, ",")),
			k.CreatedAt.Format(time.RFC3339), dashTime(k.ExpiresAt), dashTime(k.LastUsedAt), status)
	}
	return tw.Flush()
}

// KeysRevoke revokes a key by id. Running servers refuse it within
// their auth.revocation_recheck interval.
func KeysRevoke(ctx context.Context, out io.Writer, dataDir, id string, now time.Time) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.RevokeAPIKey(ctx, id, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no API key with id %q (see `mcpguard keys list`)", id)
		}
		return err
	}
	fmt.Fprintf(out, "Revoked API key %s\n", id)
	return nil
}

// KeysRotate gives a key a new secret, printed once; the old secret keeps
// working for grace.
func KeysRotate(ctx context.Context, out io.Writer, dataDir, id string, grace time.Duration, now time.Time) error {
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	key, err := apikey.Rotate(ctx, s, id, grace, now)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no API key with id %q (see `mcpguard keys list`)", id)
		}
		return err
	}
	fmt.Fprintf(out, "Rotated API key %s. The new key is shown only once:\n\n  %s\n\n", id, key)
	if grace > 0 {
		fmt.Fprintf(out, "The old secret keeps working until %s; uses of it are audited with key_previous_secret=true.\n", now.Add(grace).UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintln(out, "The old secret no longer works.")
	}
	return nil
}

// KeysRotateSigning starts a rotation of the authorization server's token
// signing key: the new key is published now and signs after publishFor.
func KeysRotateSigning(ctx context.Context, out io.Writer, cfg *config.Config, env func(string) (string, bool), publishFor time.Duration, now time.Time) error {
	s, err := openStoreFor(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer s.Close()
	k, err := oauth.RotateSigningKey(ctx, s, publishFor, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "New signing key %s is published now and signs from %s; the keys it replaces keep verifying until their tokens expire.\n",
		k.ID, k.CreatedAt.UTC().Format(time.RFC3339))
	return nil
}

// TokensRevoke puts a JWT id on the revocation list.
func TokensRevoke(ctx context.Context, out io.Writer, dataDir, jti string, expires time.Time) error {
	if jti == "" || len(jti) > 512 {
		return errors.New("a token id (jti) of 1 to 512 characters is required")
	}
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.RevokeToken(ctx, jti, expires); err != nil {
		return err
	}
	fmt.Fprintf(out, "Revoked token %s\n", printable(jti))
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func printable(s string) string { return safetext.Printable(s, 0) }
