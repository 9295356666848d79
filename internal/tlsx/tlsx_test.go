package tlsx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/internal/tlsx"
)

// writeSelfSigned writes a certificate for 127.0.0.1 named cn and its key.
func writeSelfSigned(t *testing.T, dir, cn string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	os.WriteFile(filepath.Join(dir, "c.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
}

// served returns the CN of the certificate a handshake with cfg presents,
// and the negotiated version.
func served(t *testing.T, cfg *tls.Config) (string, uint16) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	go func() { srv := tls.Server(s, cfg); srv.Handshake(); io.Copy(io.Discard, srv); s.Close() }()
	cl := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := cl.Handshake(); err != nil {
		t.Fatal(err)
	}
	st := cl.ConnectionState()
	return st.PeerCertificates[0].Subject.CommonName, st.Version
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, dir, "first")
	r, err := tlsx.New(tlsx.Files{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.Config()
	if cn, v := served(t, cfg); cn != "first" || v != tls.VersionTLS13 {
		t.Fatalf("served %s over %x", cn, v)
	}
	// A broken file is refused and the previous certificate stays.
	os.WriteFile(filepath.Join(dir, "k.pem"), []byte("garbage"), 0o600)
	if err := r.Reload(); err == nil {
		t.Fatal("a broken key was loaded")
	}
	if cn, _ := served(t, cfg); cn != "first" {
		t.Fatalf("after a failed reload served %s", cn)
	}
	// Watch picks up a change without an explicit reload.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx, 20*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	time.Sleep(30 * time.Millisecond)
	writeSelfSigned(t, dir, "second")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cn, _ := served(t, cfg); cn == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("changed files not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNoLegacyProtocols(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, dir, "x")
	r, err := tlsx.New(tlsx.Files{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem")})
	if err != nil {
		t.Fatal(err)
	}
	for name, cc := range map[string]*tls.Config{
		"TLS 1.1":        {InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10},
		"CBC suite only": {InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
	} {
		c, s := net.Pipe()
		go func() { tls.Server(s, r.Config()).Handshake(); s.Close() }()
		if err := tls.Client(c, cc).Handshake(); err == nil {
			t.Errorf("%s: handshake succeeded", name)
		}
		c.Close()
	}
}
