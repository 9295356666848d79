package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"github.com/mcpguard/mcpguard/internal/config"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/store"
)

func TestUsersCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out bytes.Buffer
	known := []string{"viewer", "developer", "admin"}
	if err := UsersAdd(ctx, &out, UserOptions{DataDir: dir, Name: "alice", Roles: []string{"developer"}, Password: "short", KnownRoles: known}); err == nil {
		t.Fatal("a short password was accepted")
	}
	if err := UsersAdd(ctx, &out, UserOptions{DataDir: dir, Name: "alice", Roles: []string{"root"}, Password: "long enough password", KnownRoles: known}); err == nil {
		t.Fatal("an unknown role was accepted")
	}
	if err := UsersAdd(ctx, &out, UserOptions{DataDir: dir, Name: "alice", Roles: []string{"developer"}, Password: "long enough password", KnownRoles: known}); err != nil {
		t.Fatal(err)
	}
	if err := UsersAdd(ctx, &out, UserOptions{DataDir: dir, Name: "alice", Roles: []string{"developer"}, Password: "long enough password", KnownRoles: known}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate user: %v", err)
	}
	st, err := OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := st.GetUser(ctx, "alice")
	if ok, _ := password.Verify(u.PasswordHash, "long enough password"); !ok || strings.Contains(u.PasswordHash, "long enough") {
		t.Fatal("the stored hash does not verify the password")
	}
	st.CreateRefreshToken(ctx, &store.RefreshToken{Hash: []byte("rt"), FamilyID: "f", Subject: "alice", Scopes: []string{}, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	st.Close()

	out.Reset()
	if err := UsersMFAEnroll(ctx, &out, cfgIn(dir), nil, "alice", "mcpguard"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	uri := regexp.MustCompile(`otpauth://totp/\S+`).FindString(text)
	codes := regexp.MustCompile(`(?m)^  ([2-9a-z]{5}-[2-9a-z]{5})$`).FindAllStringSubmatch(text, -1)
	if uri == "" || !strings.Contains(text, "█") || len(codes) != 10 {
		t.Fatalf("enrolment output lacks the URI, the QR code or 10 backup codes:\n%s", text)
	}
	st, _ = OpenStore(ctx, dir)
	u, _ = st.GetUser(ctx, "alice")
	code, _ := totp.GenerateCode(u.MFASecret, time.Now())
	if _, ok := totp.Validate(u.MFASecret, code, time.Now()); !ok || len(u.BackupCodes) != 10 || !bytes.Equal(u.BackupCodes[0], totp.HashBackupCode(codes[0][1])) {
		t.Fatal("the stored MFA secret or backup codes do not match what was printed")
	}
	st.Close()

	out.Reset()
	if err := UsersList(ctx, &out, dir, time.Now()); err != nil || !regexp.MustCompile(`alice\s+developer\s+yes\s+10`).MatchString(out.String()) {
		t.Fatalf("users list: %v\n%s", err, out.String())
	}
	if err := UsersPasswd(ctx, &out, UserOptions{DataDir: dir, Name: "alice", Password: "another long password"}); err != nil {
		t.Fatal(err)
	}
	st, _ = OpenStore(ctx, dir)
	if rt, _ := st.GetRefreshToken(ctx, []byte("rt")); rt.RevokedAt.IsZero() {
		t.Fatal("a password change left the user's refresh tokens alive")
	}
	st.Close()
	if err := UsersRemove(ctx, &out, dir, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := UsersRemove(ctx, &out, dir, "alice"); err == nil {
		t.Fatal("removing a missing user succeeded")
	}
}

func TestClientsCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out bytes.Buffer
	for name, o := range map[string]ClientOptions{
		"http redirect":       {Name: "x", RedirectURIs: []string{"http://app.example/cb"}},
		"no redirect, public": {Name: "x"},
		"role on public":      {Name: "x", RedirectURIs: []string{"https://app.example/cb"}, Roles: []string{"viewer"}},
	} {
		o.DataDir = dir
		if err := ClientsAdd(ctx, &out, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	out.Reset()
	if err := ClientsAdd(ctx, &out, ClientOptions{DataDir: dir, Name: "svc", Confidential: true, Roles: []string{"viewer"}, KnownRoles: []string{"viewer"}}); err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`client_id: (\S+)`).FindStringSubmatch(out.String())
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out.String())
	if id == nil || secret == nil {
		t.Fatalf("output:\n%s", out.String())
	}
	st, _ := OpenStore(ctx, dir)
	defer st.Close()
	c, err := st.GetClient(ctx, id[1])
	sum := sha256.Sum256([]byte(secret[1]))
	if err != nil || !bytes.Equal(c.SecretHash, sum[:]) || c.TokenEndpointAuthMethod != "client_secret_basic" || !strings.Contains(strings.Join(c.GrantTypes, ","), "client_credentials") {
		t.Fatalf("stored client = %+v, %v", c, err)
	}
	out.Reset()
	ClientsList(ctx, &out, dir)
	if !strings.Contains(out.String(), id[1]) || strings.Contains(out.String(), secret[1]) {
		t.Fatalf("clients list:\n%s", out.String())
	}
}

func TestKeysRotate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out bytes.Buffer
	if err := KeysCreate(ctx, &out, KeyCreateOptions{DataDir: dir, Name: "svc", Roles: []string{"viewer"}}); err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`Created API key ([0-9a-f]{16})`).FindStringSubmatch(out.String())[1]
	out.Reset()
	now := time.Now()
	if err := KeysRotate(ctx, &out, dir, id, 2*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`mcp_`+id+`_[A-Za-z0-9_-]{43}`).MatchString(out.String()) || !strings.Contains(out.String(), "keeps working until") {
		t.Fatalf("output:\n%s", out.String())
	}
	if err := KeysRotate(ctx, &out, dir, "ffffffffffffffff", time.Hour, now); err == nil || !strings.Contains(err.Error(), "keys list") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestKeysRotateSigning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	mustServerAt(t, st, time.Now()) // creates the first key
	st.Close()
	var out bytes.Buffer
	now := time.Now()
	if err := KeysRotateSigning(ctx, &out, cfgIn(dir), nil, 5*time.Minute, now); err != nil {
		t.Fatal(err)
	}
	st, _ = OpenStore(ctx, dir)
	defer st.Close()
	keys, _ := st.ListSigningKeys(ctx)
	if len(keys) != 2 || !strings.Contains(out.String(), keys[0].ID) || !keys[1].RetiredAt.Equal(keys[0].CreatedAt) || !keys[0].CreatedAt.Equal(now.Add(5*time.Minute)) {
		t.Fatalf("keys = %+v\n%s", keys, out.String())
	}
}

// cfgIn is the default configuration on data directory dir.
func cfgIn(dir string) *config.Config {
	c := config.Default()
	c.DataDir = dir
	return c
}
