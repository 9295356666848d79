package safehttp_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpguard/mcpguard/internal/safehttp"
)

func TestIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2606:4700::1111": true, "2a00:1450:4001:82b::200e": true,
		"127.0.0.1": false, "127.255.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "172.31.255.255": false,
		"192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "100.127.255.254": false,
		"0.0.0.0": false, "0.1.2.3": false, "255.255.255.255": false, "224.0.0.1": false, "240.0.0.1": false,
		"198.18.0.1": false, "192.0.2.1": false,
		"::1": false, "::": false, "fe80::1": false, "fc00::1": false, "fd12:3456::1": false, "ff02::1": false,
		"fec0::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:169.254.169.254": false,
		"::ffff:8.8.8.8": true, "64:ff9b::a00:1": false, "2002:a00:1::1": false, "2001:0:a00:1::1": false,
		"2001:db8::1": false,
	} {
		if got := safehttp.IsPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPublic(%s) = %v, want %v", addr, got, want)
		}
	}
}

// A server on 127.0.0.1 is refused, by IP and by a name resolving to it,
// and is never reached; AllowPrivate reaches it.
func TestClientRefusesPrivateDestinations(t *testing.T) {
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("secret internal data"))
	}))
	defer ts.Close()
	ctx := context.Background()
	strict := safehttp.NewClient(safehttp.Options{})
	for _, u := range []string{ts.URL, strings.Replace(ts.URL, "127.0.0.1", "localhost", 1), strings.Replace(ts.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1)} {
		_, _, err := safehttp.Get(ctx, strict, u, "*/*", 1024)
		if !errors.Is(err, safehttp.ErrForbiddenAddress) {
			t.Errorf("%s: err = %v, want ErrForbiddenAddress", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the private server was reached %d times", n)
	}
	body, _, err := safehttp.Get(ctx, safehttp.NewClient(safehttp.Options{AllowPrivate: true}), ts.URL, "*/*", 1024)
	if err != nil || string(body) != "secret internal data" {
		t.Fatalf("AllowPrivate: %q %v", body, err)
	}
}

func TestBodyBounds(t *testing.T) {
	big := strings.Repeat("x", 100)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		w.Write([]byte(big))
	}))
	defer ts.Close()
	ctx := context.Background()
	open := safehttp.NewClient(safehttp.Options{AllowPrivate: true})
	if _, _, err := safehttp.Get(ctx, open, ts.URL, "*/*", 99); !errors.Is(err, safehttp.ErrBodyTooLarge) {
		t.Fatalf("ReadBody bound: %v", err)
	}
	if b, _, err := safehttp.Get(ctx, open, ts.URL, "*/*", 100); err != nil || len(b) != 100 {
		t.Fatalf("a body of exactly the bound: %d %v", len(b), err)
	}
	bounded := safehttp.NewClient(safehttp.Options{AllowPrivate: true, MaxBodyBytes: 50})
	for _, path := range []string{"/", "/chunked"} {
		if _, _, err := safehttp.Get(ctx, bounded, ts.URL+path, "*/*", 1<<20); !errors.Is(err, safehttp.ErrBodyTooLarge) {
			t.Errorf("%s: MaxBodyBytes not enforced: %v", path, err)
		}
	}
}

func TestRedirects(t *testing.T) {
	var target atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/target":
			target.Add(1)
			w.Write([]byte("moved here"))
		case "/plain":
			http.Redirect(w, r, "http://"+r.Host+"/target", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			http.Redirect(w, r, "/target", http.StatusFound)
		}
	}))
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	ctx := context.Background()

	none := safehttp.NewClient(safehttp.Options{AllowPrivate: true, RootCAs: pool})
	if _, _, err := safehttp.Get(ctx, none, ts.URL+"/start", "*/*", 1024); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("a redirect was followed by default: %v", err)
	}
	if target.Load() != 0 {
		t.Fatal("the redirect target was reached")
	}
	some := safehttp.NewClient(safehttp.Options{AllowPrivate: true, RootCAs: pool, MaxRedirects: 2})
	if b, _, err := safehttp.Get(ctx, some, ts.URL+"/start", "*/*", 1024); err != nil || string(b) != "moved here" {
		t.Fatalf("https redirect: %q %v", b, err)
	}
	if _, _, err := safehttp.Get(ctx, some, ts.URL+"/plain", "*/*", 1024); err == nil {
		t.Fatal("a redirect from https to http was followed")
	}
	if _, _, err := safehttp.Get(ctx, some, ts.URL+"/loop", "*/*", 1024); err == nil {
		t.Fatal("a redirect loop was followed")
	}
	// Without the test CA the TLS server is not trusted.
	if _, _, err := safehttp.Get(ctx, safehttp.NewClient(safehttp.Options{AllowPrivate: true}), ts.URL+"/target", "*/*", 1024); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}
