package mcpclient

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxReplayBody bounds the request body that [Handler.RoundTripper] keeps so
// that it can resend a request after an authorization.
const maxReplayBody = 16 << 20

// RoundTripper returns an http.RoundTripper that sends the stored access
// token (refreshed before expiry) on every request to the server's origin
// through base (http.DefaultTransport when nil), and on 401 or 403
// insufficient_scope from it runs [Handler.Authorize] (a refresh, another
// process's newer token, or — when interactive — the browser sign-in) and
// resends the request once. Requests to any other origin (a redirect to a
// sign-on proxy, say) go out without the token.
func (h *Handler) RoundTripper(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &roundTripper{h: h, base: base}
}

type roundTripper struct {
	h    *Handler
	base http.RoundTripper
}

func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if !sameOrigin(req.URL, t.h.cfg.ServerURL) {
		r := req.Clone(req.Context())
		r.Header.Del("Authorization")
		return t.base.RoundTrip(r)
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > maxReplayBody {
			return nil, fmt.Errorf("request body larger than %d bytes", maxReplayBody)
		}
		body = b
	}
	send := func() (*http.Request, *http.Response, error) {
		r := req.Clone(req.Context())
		switch {
		case body != nil:
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		case req.GetBody != nil:
			b, err := req.GetBody()
			if err != nil {
				return nil, nil, err
			}
			r.Body = b
		}
		r.Header.Del("Authorization")
		ts, err := t.h.TokenSource(req.Context())
		if err != nil {
			return nil, nil, err
		}
		if ts != nil {
			if tok, err := ts.Token(); err == nil {
				r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			} else if !isNoGrant(err) {
				return nil, nil, err
			}
		}
		resp, err := t.base.RoundTrip(r)
		return r, resp, err
	}
	r, resp, err := send()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		return resp, nil
	}
	if resp.StatusCode == http.StatusForbidden && resp.Header.Get("WWW-Authenticate") == "" {
		return resp, nil
	}
	if err := t.h.Authorize(req.Context(), r, resp); err != nil {
		return nil, err
	}
	_, resp, err = send()
	return resp, err
}

// sameOrigin reports whether u has the scheme, host and port of the server
// URL: only such requests may carry the server's token or headers.
func sameOrigin(u *url.URL, server string) bool {
	s, err := url.Parse(server)
	return err == nil && u != nil && strings.EqualFold(u.Scheme, s.Scheme) && strings.EqualFold(u.Host, s.Host)
}

// refuseCrossOrigin is an http.Client CheckRedirect that follows redirects
// only within the server's origin (and at most 10 of them).
func refuseCrossOrigin(server string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if !sameOrigin(req.URL, server) {
			return fmt.Errorf("refused a redirect from the MCP server to another origin (%s://%s)", req.URL.Scheme, req.URL.Host)
		}
		return nil
	}
}
