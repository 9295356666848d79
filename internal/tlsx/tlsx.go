// Package tlsx serves TLS with a modern configuration and certificates that
// are reloaded without a restart: a changed certificate, key or client CA
// file (polled), or an explicit Reload (SIGHUP), takes effect on the next
// handshake. A reload that fails keeps the previous material in force.
package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/internal/tick"
)

// CipherSuites are the TLS 1.2 suites offered: ECDHE key exchange with an
// AEAD cipher only. TLS 1.3's suites are all AEAD and not configurable.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Files names the PEM files a Reloader reads.
type Files struct {
	// Cert and Key are the server certificate (chain) and its private key.
	Cert, Key string
	// ClientCA, when set, holds the CA certificates client certificates
	// are verified against (mutual TLS).
	ClientCA string
	// RequireClientCert refuses handshakes without a client certificate;
	// otherwise one is verified when given.
	RequireClientCert bool
}

// material is one loaded generation of the files.
type material struct {
	cert    *tls.Certificate
	pool    *x509.CertPool
	modTime map[string]time.Time
}

// Reloader holds the current certificate and client CA pool.
type Reloader struct {
	files Files
	mu    sync.RWMutex
	cur   *material
}

// New loads files.
func New(files Files) (*Reloader, error) {
	if files.Cert == "" || files.Key == "" {
		return nil, errors.New("tls: both a certificate and a key file are needed")
	}
	r := &Reloader{files: files}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again. On error the previous material stays.
func (r *Reloader) Reload() error {
	m := &material{modTime: map[string]time.Time{}}
	for _, f := range r.names() {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		m.modTime[f] = fi.ModTime()
	}
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.files.Cert, r.files.Key, err)
	}
	m.cert = &cert
	if r.files.ClientCA != "" {
		pem, err := os.ReadFile(r.files.ClientCA)
		if err != nil {
			return fmt.Errorf("tls: client CA: %w", err)
		}
		m.pool = x509.NewCertPool()
		if !m.pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: client CA %s holds no PEM certificate", r.files.ClientCA)
		}
	}
	r.mu.Lock()
	r.cur = m
	r.mu.Unlock()
	return nil
}

func (r *Reloader) names() []string {
	n := []string{r.files.Cert, r.files.Key}
	if r.files.ClientCA != "" {
		n = append(n, r.files.ClientCA)
	}
	return n
}

// changed reports whether any file's modification time differs from the
// loaded generation's.
func (r *Reloader) changed() bool {
	r.mu.RLock()
	cur := r.cur
	r.mu.RUnlock()
	for _, f := range r.names() {
		fi, err := os.Stat(f)
		if err != nil {
			return false // mid-rename; look again next time
		}
		if !fi.ModTime().Equal(cur.modTime[f]) {
			return true
		}
	}
	return false
}

// Watch polls the files every interval and reloads them when they change,
// until ctx is done.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	tick.Every(ctx, interval, func() {
		if !r.changed() {
			return
		}
		if err := r.Reload(); err != nil {
			logger.Error("tls: certificate files changed but could not be loaded; the previous ones stay in use", "err", err)
		} else {
			logger.Info("tls: certificates reloaded")
		}
	})
}

// Config returns the server's tls.Config. Every handshake reads the current
// material, so a reload needs no new listener.
func (r *Reloader) Config() *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: CipherSuites,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	c := base.Clone()
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		r.mu.RLock()
		m := r.cur
		r.mu.RUnlock()
		cc := base.Clone()
		cc.Certificates = []tls.Certificate{*m.cert}
		if m.pool != nil {
			cc.ClientCAs = m.pool
			cc.ClientAuth = tls.VerifyClientCertIfGiven
			if r.files.RequireClientCert {
				cc.ClientAuth = tls.RequireAndVerifyClientCert
			}
		}
		return cc, nil
	}
	return c
}

// HSTS adds Strict-Transport-Security to responses sent over TLS.
func HSTS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}
