package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/authn/mtls"
)

// CertsOptions are the inputs of `mcpguard certs init`.
type CertsOptions struct {
	// Dir receives the files; created 0700 when missing.
	Dir string
	// Hosts are the server certificate's names and addresses; nil means
	// localhost, 127.0.0.1 and ::1.
	Hosts []string
	// Validity is the certificates' lifetime; zero means 90 days.
	Validity time.Duration
	// Force overwrites existing files.
	Force bool
	// Now is the issue time; zero means time.Now.
	Now time.Time
}

// SPIFFETrustDomain is the trust domain of the demo client certificates'
// SPIFFE IDs (spiffe://mcpguard.local/user/<name>).
const SPIFFETrustDomain = "mcpguard.local"

// CertsInit writes a development CA, a server certificate and client
// certificates for the demo identities (ECDSA P-256; private keys and
// certificates written 0600) and prints the configuration that uses them.
// It refuses to overwrite existing files unless o.Force.
func CertsInit(out io.Writer, o CertsOptions) error {
	if o.Dir == "" {
		return errors.New("certs: a directory is needed (--dir)")
	}
	if o.Hosts == nil {
		o.Hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	if o.Validity <= 0 {
		o.Validity = 90 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	names := []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "mtls.yaml"}
	for _, id := range demoIdentities {
		names = append(names, id+".pem", id+"-key.pem")
	}
	if !o.Force {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(o.Dir, n)); err == nil {
				return fmt.Errorf("certs: %s exists; use --force to replace the whole set", filepath.Join(o.Dir, n))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("certs: %w", err)
			}
		}
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "mcpguard development CA", Organization: []string{"mcpguard (development only)"}},
		NotBefore:             o.Now.Add(-time.Minute),
		NotAfter:              o.Now.Add(o.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, ca, err := issue(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeCertAndKey(o.Dir, "ca", caDER, caKey); err != nil {
		return err
	}

	srvTmpl := leafTemplate(pkix.Name{CommonName: o.Hosts[0]}, o, x509.ExtKeyUsageServerAuth)
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, ip)
		} else {
			srvTmpl.DNSNames = append(srvTmpl.DNSNames, h)
		}
	}
	if _, err := issueLeaf(o.Dir, "server", srvTmpl, ca, caKey); err != nil {
		return err
	}
	fingerprints := map[string]string{}
	for _, id := range demoIdentities {
		t := leafTemplate(pkix.Name{CommonName: id, Organization: []string{"mcpguard demo"}}, o, x509.ExtKeyUsageClientAuth)
		t.URIs = []*url.URL{{Scheme: "spiffe", Host: SPIFFETrustDomain, Path: "/user/" + id}}
		c, err := issueLeaf(o.Dir, id, t, ca, caKey)
		if err != nil {
			return err
		}
		fingerprints[id] = mtls.Fingerprint(c)
	}

	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		abs = o.Dir
	}
	fmt.Fprintf(out, "Development certificates written to %s (valid until %s; for development only):\n", abs, o.Now.Add(o.Validity).UTC().Format(time.DateOnly))
	fmt.Fprintln(out, "  ca.pem, ca-key.pem            the CA (keep ca-key.pem private)")
	fmt.Fprintf(out, "  server.pem, server-key.pem    server certificate for %v\n", o.Hosts)
	for _, id := range demoIdentities {
		fmt.Fprintf(out, "  %-29s client certificate CN=%s, URI spiffe://%s/user/%s, SHA-256 %s\n", id+".pem, "+id+"-key.pem", id, SPIFFETrustDomain, id, fingerprints[id])
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "# Written by `mcpguard certs init`: HTTPS with mutual TLS for the demo identities.\nserver:\n  tls:\n    cert: %s\n    key: %s\n    client_ca: %s\n    client_auth: either   # mtls | mtls+token | either\n    identities:\n",
		filepath.Join(abs, "server.pem"), filepath.Join(abs, "server-key.pem"), filepath.Join(abs, "ca.pem"))
	for _, id := range demoIdentities {
		fmt.Fprintf(&cfg, "      - uri: spiffe://%s/user/%s\n        subject: %s\n        roles: [%s]\n", SPIFFETrustDomain, id, id, id)
	}
	cfgPath := filepath.Join(o.Dir, "mtls.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	fmt.Fprintf(out, "\nA configuration using them is in %s:\n  mcpguard serve --demo --config %s\n\n%s", cfgPath, cfgPath, cfg.String())
	return nil
}

// leafTemplate is an end-entity certificate template for one usage.
func leafTemplate(subject pkix.Name, o CertsOptions, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:     subject,
		NotBefore:   o.Now.Add(-time.Minute),
		NotAfter:    o.Now.Add(o.Validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
}

// issueLeaf creates a key pair and a certificate signed by the CA, and
// writes both.
func issueLeaf(dir, name string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	der, cert, err := issue(tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return cert, writeCertAndKey(dir, name, der, key)
}

// issue signs tmpl (with a random 128-bit serial number) by parent.
func issue(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	return der, cert, nil
}

// writeCertAndKey writes name.pem and name-key.pem, both 0600.
func writeCertAndKey(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	for file, block := range map[string]*pem.Block{
		name + ".pem":     {Type: "CERTIFICATE", Bytes: der},
		name + "-key.pem": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if err := os.Chmod(path, 0o600); err != nil { // an existing file keeps its mode otherwise
			return fmt.Errorf("certs: %w", err)
		}
	}
	return nil
}
