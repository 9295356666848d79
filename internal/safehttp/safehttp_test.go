package safehttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/internal/safehttp"
)

func TestIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false, "::": false,
		"fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"224.0.0.1": false, "64:ff9b::a00:1": false, "255.255.255.255": false,
	} {
		if got := safehttp.IsPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPublic(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestClientRefusesPrivateDestinations(t *testing.T) {
	hits := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Write([]byte("secret internal data"))
	}))
	defer ts.Close()
	ctx := context.Background()
	strict := safehttp.NewClient(safehttp.Options{})
	for _, u := range []string{ts.URL, strings.Replace(ts.URL, "127.0.0.1", "localhost", 1)} {
		_, _, err := safehttp.Get(ctx, strict, u, "*/*", 1024)
		if !errors.Is(err, safehttp.ErrForbiddenAddress) {
			t.Errorf("%s: err = %v, want ErrForbiddenAddress", u, err)
		}
	}
	if hits != 0 {
		t.Fatalf("the private server was reached %d times", hits)
	}
	body, _, err := safehttp.Get(ctx, safehttp.NewClient(safehttp.Options{AllowPrivate: true}), ts.URL, "*/*", 1024)
	if err != nil || string(body) != "secret internal data" {
		t.Fatalf("AllowPrivate: %q %v", body, err)
	}
	if _, _, err := safehttp.Get(ctx, safehttp.NewClient(safehttp.Options{AllowPrivate: true}), ts.URL, "*/*", 5); err == nil {
		t.Fatal("an oversized body was accepted")
	}
}
