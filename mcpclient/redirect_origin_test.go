package mcpclient

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestNoCredentialsToAnotherOrigin checks that the stored token and the
// --header values never leave the server's origin: not through the
// RoundTripper asked for another URL, and not through a redirect, which
// the bridge's clients refuse.
func TestNoCredentialsToAnotherOrigin(t *testing.T) {
	var leaked atomic.Value
	leaked.Store("")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization") + r.Header.Get("X-Secret"))
	}))
	defer other.Close()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer SECRET-AT" || r.Header.Get("X-Secret") != "gw-key" {
			t.Errorf("the server itself did not get the credentials: %q %q", r.Header.Get("Authorization"), r.Header.Get("X-Secret"))
		}
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	}))
	defer server.Close()
	serverURL := server.URL + "/mcp"
	st, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(&Record{Server: serverURL, ClientID: "c", TokenURL: "http://127.0.0.1:1/token", AccessToken: "SECRET-AT", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{ServerURL: serverURL, Store: st, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	var version atomic.Value
	ht := &headerTransport{base: http.DefaultTransport, header: http.Header{"X-Secret": {"gw-key"}}, version: &version, server: serverURL}
	rt := h.RoundTripper(ht)

	// Without the redirect check (a library user's own client): the
	// redirect is followed, without the credentials.
	resp, err := (&http.Client{Transport: rt}).Get(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := leaked.Load().(string); got != "" {
		t.Fatalf("another origin received %q", got)
	}
	// The bridge's client refuses the redirect altogether.
	if _, err := (&http.Client{Transport: rt, CheckRedirect: refuseCrossOrigin(serverURL)}).Get(serverURL); err == nil {
		t.Fatal("a redirect to another origin was followed")
	}
	// Asked directly for another origin, the RoundTripper adds nothing.
	resp, err = (&http.Client{Transport: rt}).Get(other.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := leaked.Load().(string); got != "" {
		t.Fatalf("another origin received %q", got)
	}
}

func TestNonPublicHost(t *testing.T) {
	ctx := t.Context()
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "10.1.2.3": true, "192.168.0.9": true,
		"169.254.169.254": true, "8.8.8.8": false, "2606:4700::1111": false, "name.invalid": false} {
		if got := nonPublicHost(ctx, host); got != want {
			t.Errorf("nonPublicHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestDiscoveryRefusesInternalAddresses checks that a public MCP server
// cannot point discovery at an internal address: the dial is refused.
func TestDiscoveryRefusesInternalAddresses(t *testing.T) {
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the internal address was reached: %s", r.URL)
	}))
	defer internal.Close()
	st, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{ServerURL: "https://mcp.example.com/mcp", Store: st, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	c := h.discoveryClient(t.Context())
	if resp, err := c.Get(internal.URL + "/.well-known/oauth-authorization-server"); err == nil {
		resp.Body.Close()
		t.Fatal("discovery reached a loopback address for a public server")
	}
}

func TestBrowserGetsOnlyWebPages(t *testing.T) {
	opened := ""
	st, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{ServerURL: "https://mcp.example.com/mcp", Store: st, Log: io.Discard,
		OpenBrowser: func(_ context.Context, u string) error { opened = u; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"file:///etc/passwd?state=s", "javascript:alert(1)//?state=s", "http://evil.example/authorize?state=s", "ssh://host?state=s"} {
		if _, err := h.browserStep(t.Context(), nil, u); err == nil || opened != "" {
			t.Fatalf("%s: err=%v, opened %q", u, err, opened)
		}
	}
}
