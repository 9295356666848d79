package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	dir := t.TempDir() + "/tokens"
	st, err := OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	const srv = "https://mcp.example/mcp"
	if r, err := st.Load(srv); r != nil || err != nil {
		t.Fatalf("empty store: %v %v", r, err)
	}
	rec := &Record{Server: srv, ClientID: "c", TokenURL: "https://as.example/token", AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(time.Hour).Round(0)}
	if err := st.Save(rec); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(srv)
	if err != nil || got.AccessToken != "at" || got.RefreshToken != "rt" || !got.Expiry.Equal(rec.Expiry) {
		t.Fatalf("load = %+v, %v", got, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(st.Path(srv)); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v", fi.Mode().Perm())
	}
	// A file copied under another server's name is refused.
	data, _ := os.ReadFile(st.Path(srv))
	os.WriteFile(st.Path("https://other.example/mcp"), data, 0o600)
	if _, err := st.Load("https://other.example/mcp"); err == nil {
		t.Error("a record for another server was accepted")
	}

	t.Run("sealed", func(t *testing.T) {
		key := []byte(strings.Repeat("k", 32))
		sealed, err := OpenStore(t.TempDir(), key)
		if err != nil {
			t.Fatal(err)
		}
		if err := sealed.Save(rec); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(sealed.Path(srv))
		if strings.Contains(string(raw), "rt") && strings.Contains(string(raw), "refresh_token") {
			t.Error("sealed file holds the token in clear")
		}
		if got, err := sealed.Load(srv); err != nil || got.RefreshToken != "rt" {
			t.Fatalf("sealed load: %v %v", got, err)
		}
		other, _ := OpenStore(sealed.Dir(), []byte(strings.Repeat("x", 32)))
		if _, err := other.Load(srv); err == nil || !strings.Contains(err.Error(), "log in again") {
			t.Errorf("wrong key: %v", err)
		}
		if _, err := OpenStore(t.TempDir(), []byte("short")); err == nil {
			t.Error("a short key was accepted")
		}
	})

	t.Run("lock", func(t *testing.T) {
		unlock, err := st.Lock(context.Background(), srv)
		if err != nil {
			t.Fatal(err)
		}
		// A second holder (another open file: flock is per open file, as
		// between processes) waits.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := st.Lock(ctx, srv); err == nil {
			t.Fatal("the lock was taken twice")
		}
		unlock()
		unlock2, err := st.Lock(context.Background(), srv)
		if err != nil {
			t.Fatal(err)
		}
		unlock2()
	})
}

// tokenEndpoint is an OAuth token endpoint for refresh_token grants that
// rotates refresh tokens and refuses reuse, counting refreshes.
type tokenEndpoint struct {
	url       string
	refreshes atomic.Int32
	mu        sync.Mutex
	current   string // the one valid refresh token
}

func newTokenEndpoint(t *testing.T, rt string) *tokenEndpoint {
	e := &tokenEndpoint{current: rt}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		e.mu.Lock()
		defer e.mu.Unlock()
		if r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != e.current {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		time.Sleep(50 * time.Millisecond) // widen the race window
		n := e.refreshes.Add(1)
		e.current = fmt.Sprintf("rt-%d", n)
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", n), "refresh_token": e.current, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(ts.Close)
	e.url = ts.URL
	return e
}

// Many goroutines of two handlers on one store (two processes) need a token
// at once while the stored one is expiring: one refresh happens, everyone
// gets its result, and the rotated refresh token is stored.
func TestRefreshOnceAcrossHandlers(t *testing.T) {
	te := newTokenEndpoint(t, "rt-0")
	const srv = "https://mcp.example/mcp"
	dir := t.TempDir()
	st, _ := OpenStore(dir, nil)
	st.Save(&Record{Server: srv, ClientID: "c", TokenURL: te.url, AccessToken: "at-0", RefreshToken: "rt-0", Expiry: time.Now().Add(10 * time.Second)})
	var handlers []*Handler
	for range 2 {
		s, _ := OpenStore(dir, nil)
		h, err := NewHandler(Config{ServerURL: srv, Store: s})
		if err != nil {
			t.Fatal(err)
		}
		handlers = append(handlers, h)
	}
	var wg sync.WaitGroup
	tokens := make(chan string, 20)
	for i := range 20 {
		wg.Go(func() {
			tok, err := handlers[i%2].Token()
			if err != nil {
				t.Error(err)
				return
			}
			tokens <- tok.AccessToken
		})
	}
	wg.Wait()
	close(tokens)
	for tok := range tokens {
		if tok != "at-1" {
			t.Errorf("token %q, want at-1", tok)
		}
	}
	if n := te.refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	if rec, _ := st.Load(srv); rec.RefreshToken != "rt-1" {
		t.Errorf("stored refresh token %q, want the rotated rt-1", rec.RefreshToken)
	}
}

// resourceServer accepts only the bearer token in *want.
func resourceServer(t *testing.T, want *atomic.Value) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want.Load().(string) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(401)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok %s", body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

func TestRoundTripper(t *testing.T) {
	var want atomic.Value
	want.Store("at-A")
	srv := resourceServer(t, &want)
	te := newTokenEndpoint(t, "rt-0")
	st, _ := OpenStore(t.TempDir(), nil)
	st.Save(&Record{Server: srv, ClientID: "c", TokenURL: te.url, AccessToken: "at-A", RefreshToken: "rt-0", Expiry: time.Now().Add(time.Hour)})
	h, err := NewHandler(Config{ServerURL: srv, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: h.RoundTripper(nil)}
	post := func() (int, string, error) {
		resp, err := c.Post(srv, "application/json", strings.NewReader(`{"x":1}`))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := post(); err != nil || code != 200 || body != `ok {"x":1}` {
		t.Fatalf("first request: %d %q %v", code, body, err)
	}

	t.Run("another process's newer token", func(t *testing.T) {
		rec, _ := st.Load(srv)
		rec.AccessToken = "at-B"
		st.Save(rec)
		want.Store("at-B")
		if code, body, err := post(); err != nil || code != 200 || body != `ok {"x":1}` {
			t.Fatalf("%d %q %v", code, body, err)
		}
		if n := te.refreshes.Load(); n != 0 {
			t.Errorf("%d refreshes; the stored token should have been picked up", n)
		}
	})

	t.Run("refused access token is refreshed", func(t *testing.T) {
		want.Store("at-1") // what the refresh will return
		if code, _, err := post(); err != nil || code != 200 {
			t.Fatalf("%d %v", code, err)
		}
		if n := te.refreshes.Load(); n != 1 {
			t.Errorf("%d refreshes, want 1", n)
		}
	})

	t.Run("refused refresh token", func(t *testing.T) {
		want.Store("nothing we have")
		te.mu.Lock()
		te.current = "revoked"
		te.mu.Unlock()
		_, _, err := post()
		if !errors.Is(err, ErrLoginRequired) || !strings.Contains(err.Error(), "run `mcpguard login "+srv+"` again") || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("err = %v", err)
		}
	})
}

func BenchmarkHandlerToken(b *testing.B) {
	st, _ := OpenStore(b.TempDir(), nil)
	const srv = "https://mcp.example/mcp"
	st.Save(&Record{Server: srv, ClientID: "c", TokenURL: "https://as.example/token", AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)})
	h, _ := NewHandler(Config{ServerURL: srv, Store: st})
	if _, err := h.TokenSource(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type okTransport struct{}

func (okTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

func BenchmarkRoundTripper(b *testing.B) {
	st, _ := OpenStore(b.TempDir(), nil)
	const srv = "https://mcp.example/mcp"
	st.Save(&Record{Server: srv, ClientID: "c", TokenURL: "https://as.example/token", AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)})
	h, _ := NewHandler(Config{ServerURL: srv, Store: st})
	rt := h.RoundTripper(okTransport{})
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", srv, strings.NewReader(string(body)))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
