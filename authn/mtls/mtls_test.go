package mtls_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/mtls"
	"github.com/mcpguard/mcpguard/guard"
)

var now = time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)

// cert makes a self-signed certificate; the TLS handshake's chain check is
// not this package's job.
func cert(t testing.TB, cn string, dns []string, uri string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestIdentityMapping(t *testing.T) {
	spiffe := cert(t, "ignored", nil, "spiffe://example.org/ns/prod/sa/agent", now.Add(time.Hour))
	byCN := cert(t, "alice", nil, "", now.Add(time.Hour))
	byDNS := cert(t, "x", []string{"svc.internal"}, "", now.Add(time.Hour))
	byFP := cert(t, "y", nil, "", now.Add(time.Hour))
	unmapped := cert(t, "mallory", nil, "", now.Add(time.Hour))
	expired := cert(t, "alice", nil, "", now.Add(-time.Minute))
	a, err := mtls.New(mtls.Config{Now: func() time.Time { return now }, Identities: []mtls.Identity{
		{URI: "spiffe://example.org/ns/prod/sa/agent", Subject: "agent", Roles: []string{"developer"}},
		{CommonName: "alice", Roles: []string{"viewer"}},
		{DNSName: "svc.internal", Roles: []string{"admin"}},
		{Fingerprint: strings.ToUpper(mtls.Fingerprint(byFP)), Subject: "pinned", Roles: []string{"viewer"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c             *x509.Certificate
		subject, role string
	}{{spiffe, "agent", "developer"}, {byCN, "alice", "viewer"}, {byDNS, "svc.internal", "admin"}, {byFP, "pinned", "viewer"}} {
		p, err := a.Authenticate(context.Background(), guard.Credential{Kind: guard.ClientCertificate, Certificate: tc.c})
		if err != nil {
			t.Fatalf("%s: %v", tc.subject, err)
		}
		if p.Subject != tc.subject || !p.HasRole(tc.role) || p.Method != guard.MethodMTLS || p.BoundCertificate != guard.CertThumbprint(tc.c) {
			t.Fatalf("%s: principal %+v", tc.subject, p)
		}
	}
	for name, c := range map[string]*x509.Certificate{"unmapped": unmapped, "expired": expired} {
		_, err := a.Authenticate(context.Background(), guard.Credential{Kind: guard.ClientCertificate, Certificate: c})
		if !errors.Is(err, guard.ErrInvalidCredentials) {
			t.Fatalf("%s: %v, want ErrInvalidCredentials", name, err)
		}
	}
	if _, err := a.Authenticate(context.Background(), guard.Credential{Kind: guard.Bearer, Secret: "x"}); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("bearer credential: %v", err)
	}
}

func TestPinning(t *testing.T) {
	pinned := cert(t, "alice", nil, "", now.Add(time.Hour))
	other := cert(t, "alice", nil, "", now.Add(time.Hour))
	fp := mtls.Fingerprint(pinned)
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, fp[i:i+2])
	}
	a, err := mtls.New(mtls.Config{Now: func() time.Time { return now }, PinnedFingerprints: []string{strings.Join(colons, ":")},
		Identities: []mtls.Identity{{CommonName: "alice"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(context.Background(), guard.Credential{Kind: guard.ClientCertificate, Certificate: pinned}); err != nil {
		t.Fatalf("pinned: %v", err)
	}
	_, err = a.Authenticate(context.Background(), guard.Credential{Kind: guard.ClientCertificate, Certificate: other})
	if !errors.Is(err, guard.ErrInvalidCredentials) || !strings.Contains(err.Error(), "not pinned") {
		t.Fatalf("unpinned: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]mtls.Config{
		"bad pin":             {PinnedFingerprints: []string{"abc"}},
		"two selectors":       {Identities: []mtls.Identity{{CommonName: "a", URI: "spiffe://x/y"}}},
		"none":                {Identities: []mtls.Identity{{Roles: []string{"r"}}}},
		"fingerprint subject": {Identities: []mtls.Identity{{Fingerprint: strings.Repeat("a", 64)}}},
	} {
		if _, err := mtls.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkAuthenticate measures the per-request cost of mapping a client
// certificate (SPIFFE URI identity, pinning on).
func BenchmarkAuthenticate(b *testing.B) {
	c := cert(b, "agent", nil, "spiffe://example.org/agent", now.Add(time.Hour))
	a, _ := mtls.New(mtls.Config{Now: func() time.Time { return now }, PinnedFingerprints: []string{mtls.Fingerprint(c)},
		Identities: []mtls.Identity{{CommonName: "other"}, {URI: "spiffe://example.org/agent", Roles: []string{"developer"}}}})
	cred := guard.Credential{Kind: guard.ClientCertificate, Certificate: c}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}
