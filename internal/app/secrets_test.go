package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/admin"
	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/authn/introspect"
	"github.com/mcpguard/mcpguard/oauth"

	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/secrets"
)

func TestSecretsCommandsAndReferences(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	_, oldHex, _ := secrets.NewMasterKey()
	_, newHex, _ := secrets.NewMasterKey()
	envWith := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	env := envWith(map[string]string{"MCPGUARD_MASTER_KEY": oldHex})
	const value = "hs256-secret-value-of-32-bytes!!"
	var out bytes.Buffer
	if err := SecretsSet(ctx, &out, cfg, env, "jwt-key", []byte(value)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := SecretsGet(ctx, &out, cfg, env, "jwt-key"); err != nil || out.String() != value {
		t.Fatalf("get: %q %v", out.String(), err)
	}
	// A wrong master key is refused clearly.
	_, wrongHex, _ := secrets.NewMasterKey()
	err := SecretsGet(ctx, &out, cfg, envWith(map[string]string{"MCPGUARD_MASTER_KEY": wrongHex}), "jwt-key")
	if err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("wrong master key: %v", err)
	}
	out.Reset()
	SecretsList(ctx, &out, cfg.DataDir)
	if !strings.Contains(out.String(), "jwt-key") || strings.Contains(out.String(), value) {
		t.Fatalf("list:\n%s", out.String())
	}
	// secret:NAME resolves where a secret is configured: an HS256 JWT key.
	cfg.Auth.JWT = config.JWTConfig{Enabled: true, Issuer: "https://idp.example", Audiences: []string{"a"},
		Keys: []config.JWTKey{{KID: "k", Alg: "HS256", Secret: "secret:jwt-key"}}}
	st, _ := OpenStore(ctx, cfg.DataDir)
	if _, _, _, err := buildGuard(ctx, cfg, st, resolver(ctx, cfg, st, env), nil, nil); err != nil {
		t.Fatalf("buildGuard with a secret: reference: %v", err)
	}
	cfg.Auth.JWT.Keys[0].Secret = "secret:missing"
	if _, _, _, err := buildGuard(ctx, cfg, st, resolver(ctx, cfg, st, env), nil, nil); err == nil || !strings.Contains(err.Error(), "mcpguard secrets set missing") {
		t.Fatalf("missing secret: %v", err)
	}
	st.Close()
	// Rotation keeps every secret readable with the new key, and with the
	// new key plus the old as previous.
	out.Reset()
	if err := SecretsRotateMaster(ctx, &out, cfg, env, []byte(newHex)); err != nil {
		t.Fatal(err)
	}
	for name, vars := range map[string]map[string]string{
		"new key":          {"MCPGUARD_MASTER_KEY": newHex},
		"new, old as prev": {"MCPGUARD_MASTER_KEY": newHex, "OLD": oldHex},
	} {
		c := *cfg
		if name == "new, old as prev" {
			c.Secrets.PreviousMasterKeys = []config.SecretRef{"env:OLD"}
		}
		out.Reset()
		if err := SecretsGet(ctx, &out, &c, envWith(vars), "jwt-key"); err != nil || out.String() != value {
			t.Fatalf("%s after rotation: %q %v", name, out.String(), err)
		}
	}
	if err := SecretsGet(ctx, &out, cfg, env, "jwt-key"); err == nil {
		t.Fatal("the old master key alone still reads a rotated secret")
	}
}

// The option structs that hold secrets print them redacted, whatever the
// verb: a %+v of a configuration in a log line leaks nothing.
func TestSecretFieldsAreRedacted(t *testing.T) {
	const secret = "0123456789abcdef-the-secret-0123456789"
	v := secrets.Value(secret)
	for name, s := range map[string]any{
		"audit.Options":     audit.Options{HMACKey: v, PreviousHMACKeys: []secrets.Value{v}},
		"oauth.Config":      oauth.Config{SessionKey: v},
		"introspect.Config": introspect.Config{ClientSecret: v},
		"admin.Options":     admin.Options{SessionKey: v},
	} {
		js, _ := json.Marshal(s)
		out := fmt.Sprintf("%v %+v %#v %s", s, s, s, js)
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) || strings.Contains(out, fmt.Sprint([]byte(secret))) {
			t.Errorf("%s leaks its secret: %s", name, out)
		}
	}
}
