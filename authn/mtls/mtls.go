// Package mtls authenticates callers by the client certificate of a mutual
// TLS connection. The TLS handshake (crypto/tls with the trusted client CAs)
// has already verified the chain, the validity window and the client-auth
// extended key usage; this package re-checks the validity window (a
// connection may outlive its certificate), applies optional SHA-256
// fingerprint pinning, and maps the certificate to a configured identity.
// A certificate that maps to no identity is refused: deny by default.
package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safetext"
)

// Issuer is the Principal.Issuer of certificate principals.
const Issuer = "mtls"

// Identity maps certificates to a principal. Exactly one of CommonName,
// DNSName, URI and Fingerprint selects the certificates it matches.
type Identity struct {
	// Subject is the principal's subject; empty means the matched value
	// (the common name, DNS name or URI; for a fingerprint match it is
	// required).
	Subject string
	// Roles are the principal's roles.
	Roles []string
	// CommonName matches the certificate subject's CN exactly.
	CommonName string
	// DNSName matches one of the certificate's DNS SANs exactly.
	DNSName string
	// URI matches one of the certificate's URI SANs exactly, for example a
	// SPIFFE ID such as spiffe://example.org/ns/prod/sa/agent.
	URI string
	// Fingerprint matches the SHA-256 fingerprint of the certificate (hex,
	// colons and case ignored).
	Fingerprint string
}

// Config configures an Authenticator.
type Config struct {
	// Identities are tried in order; the first match wins.
	Identities []Identity
	// PinnedFingerprints, when not empty, are the only certificates
	// accepted (SHA-256 hex, colons and case ignored), whatever their CA.
	PinnedFingerprints []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Authenticator is a guard.Authenticator for client certificates.
type Authenticator struct {
	ids  []Identity
	pins [][]byte
	now  func() time.Time
}

var _ guard.Authenticator = (*Authenticator)(nil)

// New checks cfg and returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{now: cfg.Now}
	if a.now == nil {
		a.now = time.Now
	}
	for i, p := range cfg.PinnedFingerprints {
		b, err := ParseFingerprint(p)
		if err != nil {
			return nil, fmt.Errorf("mtls: pinned fingerprint %d: %w", i, err)
		}
		a.pins = append(a.pins, b)
	}
	for i, id := range cfg.Identities {
		n := 0
		for _, v := range []string{id.CommonName, id.DNSName, id.URI, id.Fingerprint} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("mtls: identity %d: set exactly one of common_name, dns_name, uri, fingerprint", i)
		}
		if id.Fingerprint != "" {
			b, err := ParseFingerprint(id.Fingerprint)
			if err != nil {
				return nil, fmt.Errorf("mtls: identity %d: %w", i, err)
			}
			if id.Subject == "" {
				return nil, fmt.Errorf("mtls: identity %d: a fingerprint identity needs a subject", i)
			}
			id.Fingerprint = hex.EncodeToString(b)
		}
		a.ids = append(a.ids, id)
	}
	return a, nil
}

// ParseFingerprint decodes a SHA-256 fingerprint written in hex, with or
// without colons, in either case.
func ParseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", "")))
	if err != nil || len(b) != sha256.Size {
		return nil, errors.New("a SHA-256 fingerprint is 64 hex digits (colons allowed)")
	}
	return b, nil
}

// Fingerprint returns the SHA-256 fingerprint of cert in lower-case hex.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

func refuse(reason string) error {
	return fmt.Errorf("%w: client certificate %s", guard.ErrInvalidCredentials, reason)
}

// Authenticate maps a verified client certificate to its principal.
func (a *Authenticator) Authenticate(_ context.Context, cred guard.Credential) (*guard.Principal, error) {
	cert := cred.Certificate
	if cred.Kind != guard.ClientCertificate || cert == nil {
		return nil, refuse("missing")
	}
	now := a.now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, refuse("outside its validity period")
	}
	sum := sha256.Sum256(cert.Raw)
	if len(a.pins) > 0 && !slices.ContainsFunc(a.pins, func(p []byte) bool { return subtle.ConstantTimeCompare(p, sum[:]) == 1 }) {
		return nil, refuse("not pinned (fingerprint " + hex.EncodeToString(sum[:]) + ")")
	}
	id, subject, ok := a.match(cert, hex.EncodeToString(sum[:]))
	if !ok {
		return nil, refuse("maps to no identity (CN " + safetext.Printable(cert.Subject.CommonName, 100) + ")")
	}
	return &guard.Principal{
		Subject:          subject,
		Issuer:           Issuer,
		Method:           guard.MethodMTLS,
		Roles:            slices.Clone(id.Roles),
		ExpiresAt:        cert.NotAfter,
		BoundCertificate: guard.CertThumbprint(cert),
	}, nil
}

// match returns the first identity matching cert and the principal's
// subject.
func (a *Authenticator) match(cert *x509.Certificate, fp string) (Identity, string, bool) {
	for _, id := range a.ids {
		var matched string
		switch {
		case id.CommonName != "":
			if cert.Subject.CommonName == id.CommonName {
				matched = id.CommonName
			}
		case id.DNSName != "":
			if slices.Contains(cert.DNSNames, id.DNSName) {
				matched = id.DNSName
			}
		case id.URI != "":
			for _, u := range cert.URIs {
				if u.String() == id.URI {
					matched = id.URI
				}
			}
		case id.Fingerprint != "":
			if subtle.ConstantTimeCompare([]byte(id.Fingerprint), []byte(fp)) == 1 {
				matched = id.Fingerprint
			}
		}
		if matched == "" {
			continue
		}
		if id.Subject != "" {
			return id, id.Subject, true
		}
		return id, matched, true
	}
	return Identity{}, "", false
}
