package mcpclient

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// legacyTransport carries one authorization's discovery requests and
// supports servers of the 2025-03-26 revision, which have no Protected
// Resource Metadata and publish the authorization server metadata at the
// MCP server's own origin: /.well-known/oauth-authorization-server.
//
// Such metadata may name an issuer below that origin (say
// https://host/oauth) that is not where the metadata was fetched from;
// RFC 8414's issuer check, which the go-sdk applies, would then refuse it.
// In that case only — no PRM was found for this authorization, the
// metadata came from the MCP server's origin, and its issuer is on that
// same origin — the issuer is taken to be the origin, as the 2025-03-26
// revision defines it. With PRM (every later revision) nothing is changed,
// so an issuer mismatch there is still refused.
type legacyTransport struct {
	base   http.RoundTripper
	origin string // scheme://host of the MCP server

	prmFound atomic.Bool
}

// maxMetadata bounds an authorization server metadata document.
const maxMetadata = 256 << 10

func (t *legacyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(req.URL.Path, "/.well-known/oauth-protected-resource") && resp.StatusCode == http.StatusOK {
		t.prmFound.Store(true)
		return resp, nil
	}
	if t.prmFound.Load() || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK ||
		req.URL.Path != "/.well-known/oauth-authorization-server" || origin(req.URL) != t.origin {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) > maxMetadata {
		return resp, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return resp, nil
	}
	var issuer string
	if json.Unmarshal(m["issuer"], &issuer) != nil || issuer == t.origin {
		return resp, nil
	}
	if iu, err := url.Parse(issuer); err != nil || origin(iu) != t.origin {
		return resp, nil
	}
	m["issuer"], _ = json.Marshal(t.origin)
	if out, err := json.Marshal(m); err == nil {
		resp.Body = io.NopCloser(bytes.NewReader(out))
		resp.ContentLength = int64(len(out))
		resp.Header.Del("Content-Length")
	}
	return resp, nil
}

func origin(u *url.URL) string { return u.Scheme + "://" + u.Host }
