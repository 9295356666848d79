package guard_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// stepUpFixture serves two scope-limited OAuth principals: "tok-dev" holds
// scope dev (role developer), "tok-view" holds scope view (role viewer).
// Scope admin grants role admin; StepUp asks for it whenever admin is
// required and the caller is scope-limited.
func stepUpFixture(t *testing.T) *fixture {
	return newHTTPFixture(t, func(g *guard.Guard) {
		auth := g.Authenticator.(keyAuth)
		auth["tok-dev"] = &guard.Principal{Subject: "dora", Method: guard.MethodOAuth, Roles: []string{"developer"}, Scopes: []string{"dev"}, ScopeLimited: true}
		auth["tok-api"] = &guard.Principal{Subject: "dave", Method: guard.MethodAPIKey, Roles: []string{"developer"}}
		g.HTTP.ResourceMetadataURL = "http://rs.example/.well-known/oauth-protected-resource/mcp"
		g.HTTP.ChallengeScopes = []string{"view", "dev"}
		g.HTTP.StepUp = func(_ context.Context, p *guard.Principal, a guard.Action, d guard.Decision) []string {
			if !p.ScopeLimited || !slices.Contains(d.RequiredRoles, "admin") {
				return nil
			}
			return append(slices.Clone(p.Scopes), "admin")
		}
	})
}

func TestChallengeCarriesScopeAndResourceMetadata(t *testing.T) {
	f := stepUpFixture(t)
	status, hdr, _ := post(t, f.url, "", initializeBody)
	want := `Bearer realm="mcpguard", resource_metadata="http://rs.example/.well-known/oauth-protected-resource/mcp", scope="view dev"`
	if status != 401 || hdr.Get("WWW-Authenticate") != want {
		t.Fatalf("status %d, WWW-Authenticate %q; want 401 %q", status, hdr.Get("WWW-Authenticate"), want)
	}
}

func TestStepUpInsufficientScope(t *testing.T) {
	f := stepUpFixture(t)
	call := func(key, tool string) (int, http.Header, string) {
		return postSession(t, f.url, key, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`)
	}
	// A scope-limited token asking for an admin tool: 403 step-up.
	status, hdr, body := call("tok-dev", "delete_users")
	if status != http.StatusForbidden {
		t.Fatalf("status %d (%s), want 403", status, body)
	}
	got := hdr.Get("WWW-Authenticate")
	for _, part := range []string{`Bearer error="insufficient_scope"`, `scope="dev admin"`, `resource_metadata="http://rs.example/.well-known/oauth-protected-resource/mcp"`, `error_description=`} {
		if !strings.Contains(got, part) {
			t.Errorf("WWW-Authenticate %q lacks %s", got, part)
		}
	}
	recs := f.sink.find(guard.Denied, "tools/call")
	if len(recs) != 1 || recs[0].Subject != "dora" || !strings.Contains(recs[0].Reason, "step-up") || !slices.Equal(recs[0].RequiredRoles, []string{"admin"}) {
		t.Fatalf("audit = %+v", recs)
	}
	// An allowed call is not affected.
	if status, _, body := call("tok-dev", "execute_sql"); status != 200 || !strings.Contains(body, "ran execute_sql") {
		t.Fatalf("allowed call: %d %s", status, body)
	}
	// A principal that more scopes cannot help is refused in band with
	// ACCESS DENIED, not with a step-up challenge.
	status, hdr, body = call("tok-api", "delete_users")
	if status != 200 || hdr.Get("WWW-Authenticate") != "" || !strings.Contains(body, "ACCESS DENIED") {
		t.Fatalf("api key: %d %q %s", status, hdr.Get("WWW-Authenticate"), body)
	}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`

// post sends body with an optional bearer token, outside any session.
func post(t *testing.T, url, token, body string) (int, http.Header, string) {
	t.Helper()
	return do(t, url, token, "", body)
}

// postSession opens a session for token and sends body in it.
func postSession(t *testing.T, url, token, body string) (int, http.Header, string) {
	t.Helper()
	status, hdr, _ := do(t, url, token, "", initializeBody)
	if status != 200 {
		t.Fatalf("initialize: %d", status)
	}
	sid := hdr.Get("Mcp-Session-Id")
	do(t, url, token, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return do(t, url, token, sid, body)
}

func do(t *testing.T, url, token, sid, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// A call made with an API key's previous secret, during its rotation grace,
// is marked in its audit record.
func TestPreviousSecretIsAudited(t *testing.T) {
	f := newHTTPFixture(t, func(g *guard.Guard) {
		g.Authenticator.(keyAuth)["old-secret"] = &guard.Principal{Subject: "svc", Method: guard.MethodAPIKey, KeyID: "k1", Roles: []string{"viewer"}, PreviousSecret: true}
	})
	if status, _, body := postSession(t, f.url, "old-secret", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"query","arguments":{}}}`); status != 200 || !strings.Contains(body, "ran query") {
		t.Fatalf("%d %s", status, body)
	}
	recs := f.sink.find(guard.Allowed, "tools/call")
	if len(recs) != 1 || !recs[0].PreviousKey || recs[0].KeyID != "k1" {
		t.Fatalf("audit = %+v", recs)
	}
}
