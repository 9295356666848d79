package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/mtls"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// devPKI is the output of `mcpguard certs init` in dir/certs.
type devPKI struct {
	dir    string
	caCert *x509.Certificate
	caKey  any
	roots  *x509.CertPool
}

func certsInit(t *testing.T, dir string) *devPKI {
	t.Helper()
	out, err := run(t, dir, nil, "certs", "init", "--dir", "certs")
	if err != nil {
		t.Fatalf("certs init: %v\n%s", err, out)
	}
	p := &devPKI{dir: filepath.Join(dir, "certs")}
	for _, f := range []string{"ca.pem", "ca-key.pem", "server-key.pem", "admin.pem", "admin-key.pem", "viewer-key.pem"} {
		fi, err := os.Stat(filepath.Join(p.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	p.caCert = readCert(t, filepath.Join(p.dir, "ca.pem"))
	kp, err := tls.LoadX509KeyPair(filepath.Join(p.dir, "ca.pem"), filepath.Join(p.dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p.caKey = kp.PrivateKey
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.caCert)
	return p
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pair loads one of certs init's client certificates.
func (p *devPKI) pair(t *testing.T, name string) tls.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// mint issues a client certificate for the demo identity name, signed by
// issuer (nil: a fresh, untrusted CA), valid in [from, until), with usage.
func (p *devPKI) mint(t *testing.T, name string, trusted bool, from, until time.Time, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	parent, parentKey := p.caCert, p.caKey
	if !trusted {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mcpguard development CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		parent, _ = x509.ParseCertificate(der)
		parentKey = k
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: from, NotAfter: until, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		URIs: []*url.URL{{Scheme: "spiffe", Host: "mcpguard.local", Path: "/user/" + name}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// client is an HTTPS client trusting the development CA, presenting
// cert when given.
func (p *devPKI) client(cert *tls.Certificate) *http.Client {
	c := &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Always send it, even when the server's list of acceptable CAs
		// does not name its issuer (crypto/tls would send nothing).
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}, Timeout: 20 * time.Second}
}

// tlsConfigYAML is server.tls for the demo identities.
func (p *devPKI) tlsConfigYAML(mode string, extra string) string {
	s := fmt.Sprintf(`server:
  tls:
    cert: %[1]s/server.pem
    key: %[1]s/server-key.pem
    client_ca: %[1]s/ca.pem
    client_auth: %[2]s
    reload_interval: 200ms
%[3]s    identities:
`, p.dir, mode, extra)
	for _, id := range []string{"admin", "developer", "viewer"} {
		s += fmt.Sprintf("      - {uri: spiffe://mcpguard.local/user/%s, subject: %s, roles: [%s]}\n", id, id, id)
	}
	return s
}

// connectTLS opens an MCP session with the go-sdk client over hc.
func connectTLS(t *testing.T, url string, hc *http.Client, h http.Header) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpguard-test", Version: "1"}, nil)
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: mcptest.HeaderTransport{Header: h, Base: hc.Transport}}, MaxRetries: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, tr, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// postWith sends one JSON-RPC message over hc.
func postWith(t *testing.T, hc *http.Client, url string, h http.Header, body string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func TestTLSAndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	pki := certsInit(t, dir)
	cfg := writeConfig(t, dir, pki.tlsConfigYAML("either", ""))
	s := start(t, dir, nil, "--config", cfg, "--demo")
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
		t.Fatalf("server URL %s is not https", s.url)
	}
	ctx := context.Background()
	admin := pki.pair(t, "admin")

	t.Run("trusted client certificate", func(t *testing.T) {
		hc := pki.client(&admin)
		cs, err := connectTLS(t, s.url, hc, nil)
		if err != nil {
			t.Fatalf("connect with the admin certificate: %v", err)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "CREATE TABLE mtls_ok (id INTEGER)"}})
		if err != nil || res.IsError {
			t.Fatalf("execute_sql as admin over mTLS: %v %v", err, res)
		}
		rec := waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["target"] == "execute_sql" })
		if rec["user"] != "admin" || rec["decision"] != "ALLOWED" {
			t.Fatalf("audit record %v", rec)
		}
		viewer := pki.pair(t, "viewer")
		vs, err := connectTLS(t, s.url, pki.client(&viewer), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err = vs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "SELECT 1"}})
		if err == nil && !res.IsError {
			t.Fatal("viewer's certificate was granted execute_sql: roles not mapped from the certificate")
		}
		resp, err := postWith(t, hc, s.url, nil, initBody)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(got, "max-age=") {
			t.Errorf("no HSTS on an HTTPS response: %q", got)
		}
		if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
			t.Errorf("negotiated TLS version %x, want TLS 1.3", resp.TLS.Version)
		}
	})

	t.Run("refused certificates", func(t *testing.T) {
		now := time.Now()
		for name, cert := range map[string]tls.Certificate{
			"untrusted CA": pki.mint(t, "admin", false, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth),
			"expired":      pki.mint(t, "admin", true, now.Add(-48*time.Hour), now.Add(-24*time.Hour), x509.ExtKeyUsageClientAuth),
			"wrong usage":  pki.mint(t, "admin", true, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageServerAuth),
		} {
			resp, err := postWith(t, pki.client(&cert), s.url, nil, initBody)
			if err == nil {
				t.Errorf("%s: request succeeded with status %d", name, resp.StatusCode)
				continue
			}
			t.Logf("%s: %v", name, err)
		}
		// A trusted CA but no certificate and no token: 401.
		resp, err := postWith(t, pki.client(nil), s.url, nil, initBody)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no credential at all: %v %v", resp, err)
		}
		// The handshake refusal is not silent: the server logs it.
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(s.output.String(), "TLS handshake error") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(s.output.String(), "TLS handshake error") {
			t.Errorf("refused handshakes not logged:\n%s", s.output)
		}
	})

	t.Run("curl --cert", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl not installed")
		}
		curl := func(cert string) (string, error) {
			args := []string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(pki.dir, "ca.pem"),
				"-H", "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream", "-d", initBody}
			if cert != "" {
				args = append(args, "--cert", filepath.Join(pki.dir, cert+".pem"), "--key", filepath.Join(pki.dir, cert+"-key.pem"))
			}
			out, err := exec.Command("curl", append(args, s.url)...).CombinedOutput()
			return string(out), err
		}
		if out, err := curl("admin"); err != nil || out != "200" {
			t.Fatalf("curl --cert admin.pem: %v %s", err, out)
		}
		if out, err := curl(""); err != nil || out != "401" {
			t.Fatalf("curl without a certificate: %v %s", err, out)
		}
		// A certificate from another CA fails the handshake.
		bad := pki.mint(t, "admin", false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), x509.ExtKeyUsageClientAuth)
		writePair(t, filepath.Join(pki.dir, "rogue"), bad)
		if out, err := curl("rogue"); err == nil && out == "200" {
			t.Fatalf("curl with a rogue certificate got %s", out)
		}
	})

	t.Run("certificate-bound token", func(t *testing.T) {
		out, err := run(t, dir, nil, "clients", "add", "--config", cfg, "--name", "svc", "--confidential", "--role", "developer")
		if err != nil {
			t.Fatalf("clients add: %v\n%s", err, out)
		}
		id := regexp.MustCompile(`client_id: (\S+)`).FindStringSubmatch(out)[1]
		secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
		base := strings.TrimSuffix(s.url, "/mcp")
		tokenReq := func(hc *http.Client) string {
			form := url.Values{"grant_type": {"client_credentials"}, "resource": {s.url}, "scope": {"mcp:tools"}}
			req, _ := http.NewRequest("POST", base+"/oauth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var tr struct {
				AccessToken string `json:"access_token"`
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
				t.Fatalf("token request: %d %s", resp.StatusCode, body)
			}
			return tr.AccessToken
		}
		token := tokenReq(pki.client(&admin))
		claims := jwtClaims(t, token)
		cnf, _ := claims["cnf"].(map[string]any)
		wantX5t := thumbprint(admin.Certificate[0])
		if cnf == nil || cnf["x5t#S256"] != wantX5t {
			t.Fatalf("token issued over mTLS has cnf %v, want x5t#S256 %s", claims["cnf"], wantX5t)
		}
		// With its certificate: accepted.
		if _, err := connectTLS(t, s.url, pki.client(&admin), bearer(token)); err != nil {
			t.Fatalf("bound token with its certificate: %v", err)
		}
		// Without a certificate, or with another one: refused and audited.
		for name, hc := range map[string]*http.Client{"no certificate": pki.client(nil), "another certificate": pki.client(ptr(pki.pair(t, "viewer")))} {
			resp, err := postWith(t, hc, s.url, bearer(token), initBody)
			if err != nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
				t.Fatalf("%s: bound token got %v %v", name, resp, err)
			}
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["decision"] == "AUTH_FAILED" && r["reason"] == "certificate-bound token presented without its certificate"
		})
		// A token requested without a client certificate is not bound.
		plain := tokenReq(pki.client(nil))
		if _, ok := jwtClaims(t, plain)["cnf"]; ok {
			t.Fatal("token requested without mTLS carries cnf")
		}
		if _, err := connectTLS(t, s.url, pki.client(nil), bearer(plain)); err != nil {
			t.Fatalf("unbound token: %v", err)
		}
	})

	t.Run("certificate-bound refresh token", func(t *testing.T) {
		if out, err := runInput(t, dir, nil, oauthPassword+"\n", "--config", cfg, "users", "add", "alice", "--role", "developer", "--password-stdin"); err != nil {
			t.Fatalf("users add: %v\n%s", err, out)
		}
		withCert := pki.client(&admin)
		access, refresh, client := authCodeWith(t, s, "alice", withCert)
		if cnf, _ := jwtClaims(t, access)["cnf"].(map[string]any); cnf["x5t#S256"] != thumbprint(admin.Certificate[0]) {
			t.Fatalf("access token from a code exchanged over mTLS: cnf %v", cnf)
		}
		base := strings.TrimSuffix(s.url, "/mcp")
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {refresh}}
		resp, err := pki.client(nil).PostForm(base+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "bound to a client certificate") {
			t.Fatalf("bound refresh token without its certificate: %d %s", resp.StatusCode, body)
		}
		resp, err = withCert.PostForm(base+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if cnf, _ := jwtClaims(t, tok.AccessToken)["cnf"].(map[string]any); resp.StatusCode != 200 || cnf["x5t#S256"] != thumbprint(admin.Certificate[0]) {
			t.Fatalf("refresh with its certificate: %d, cnf %v", resp.StatusCode, cnf)
		}
	})

	t.Run("certificate reload", func(t *testing.T) {
		before := serverCert(t, pki, s.url)
		out, err := run(t, dir, nil, "certs", "init", "--dir", "certs", "--force")
		if err != nil {
			t.Fatalf("certs init --force: %v\n%s", err, out)
		}
		pki2 := &devPKI{dir: pki.dir, caCert: readCert(t, filepath.Join(pki.dir, "ca.pem")), roots: x509.NewCertPool()}
		pki2.roots.AddCert(pki2.caCert)
		deadline := time.Now().Add(10 * time.Second)
		for {
			after, err := serverCertErr(pki2, s.url)
			if err == nil && !after.Equal(before) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server certificate not reloaded within 10s (last error %v)", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The new CA's client certificates work, the old ones do not.
		newAdmin := pki2.pair(t, "admin")
		if _, err := connectTLS(t, s.url, pki2.client(&newAdmin), nil); err != nil {
			t.Fatalf("new admin certificate after reload: %v", err)
		}
		if _, err := postWith(t, pki2.client(&admin), s.url, nil, initBody); err == nil {
			t.Fatal("a certificate of the replaced CA still accepted")
		}
	})
}

func TestMutualTLSPinning(t *testing.T) {
	dir := t.TempDir()
	pki := certsInit(t, dir)
	adminFP := mtls.Fingerprint(readCert(t, filepath.Join(pki.dir, "admin.pem")))
	cfg := writeConfig(t, dir, pki.tlsConfigYAML("mtls", "    pinned_fingerprints: ["+adminFP+"]\n"))
	s := start(t, dir, nil, "--config", cfg, "--demo")
	admin, dev := pki.pair(t, "admin"), pki.pair(t, "developer")
	if _, err := connectTLS(t, s.url, pki.client(&admin), nil); err != nil {
		t.Fatalf("pinned certificate: %v", err)
	}
	resp, err := postWith(t, pki.client(&dev), s.url, nil, initBody)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unpinned certificate: %v %v", resp, err)
	}
	rec := waitAudit(t, s.auditLg, func(r map[string]any) bool {
		reason, _ := r["reason"].(string)
		return r["decision"] == "AUTH_FAILED" && strings.Contains(reason, "not pinned")
	})
	t.Logf("audit: %v", rec["reason"])
	// mtls mode requires the certificate: a demo API key alone is refused
	// at the handshake.
	if _, err := postWith(t, pki.client(nil), s.url, bearer(s.keys["admin"]), initBody); err == nil {
		t.Fatal("mtls mode accepted a connection without a client certificate")
	}
}

func ptr[T any](v T) *T { return &v }

func thumbprint(der []byte) string {
	c, _ := x509.ParseCertificate(der)
	return guard.CertThumbprint(c)
}

func writePair(t *testing.T, base string, c tls.Certificate) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(base+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
	os.WriteFile(base+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

func serverCert(t *testing.T, p *devPKI, url string) *x509.Certificate {
	t.Helper()
	c, err := serverCertErr(p, url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serverCertErr(p *devPKI, rawURL string) (*x509.Certificate, error) {
	u, _ := url.Parse(rawURL)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: p.roots, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// jwtClaims decodes a JWT's payload without verifying it.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCertificateReloadOnSIGHUP replaces the certificates while the file
// watcher is too slow to notice, and reloads them with SIGHUP (the signal
// that also reloads the policies).
func TestCertificateReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pki := certsInit(t, dir)
	cfg := writeConfig(t, dir, strings.Replace(pki.tlsConfigYAML("either", ""), "reload_interval: 200ms", "reload_interval: 1h", 1))
	s := start(t, dir, nil, "--config", cfg, "--demo")
	before := serverCert(t, pki, s.url)
	if out, err := run(t, dir, nil, "certs", "init", "--dir", "certs", "--force"); err != nil {
		t.Fatalf("certs init --force: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	if after := serverCert(t, pki, s.url); !after.Equal(before) {
		t.Fatal("certificate changed before SIGHUP: the test does not test the signal")
	}
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pki2 := &devPKI{dir: pki.dir, roots: x509.NewCertPool()}
	pki2.roots.AddCert(readCert(t, filepath.Join(pki.dir, "ca.pem")))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if after, err := serverCertErr(pki2, s.url); err == nil && !after.Equal(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reloaded on SIGHUP; output:\n%s", s.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The new certificate is served as soon as it is loaded; the log lines
	// follow once every reload has run.
	for {
		out := s.output.String()
		if strings.Contains(out, "SIGHUP: TLS certificates reloaded") && strings.Contains(out, "SIGHUP: policies reloaded") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("one SIGHUP did not reload both policies and certificates:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
