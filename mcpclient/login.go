package mcpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrNoAuthorization is returned by [Handler.Login] when the server answers
// without asking for any authorization.
var ErrNoAuthorization = errors.New("the server does not ask for authorization")

// probeBody is an initialize request: what an MCP client sends first, and so
// what a protected server answers with its 401 challenge.
const probeBody = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcpguard-login","version":"1"}}}`

// Login makes sure a working login for the server is stored. Unless force
// is set, a stored login that the server accepts (after a refresh if
// needed) is kept; otherwise the server is asked without a token, and its
// 401 challenge starts discovery and the browser sign-in. The handler must
// be interactive.
func (h *Handler) Login(ctx context.Context, force bool) error {
	if !h.cfg.Interactive {
		return errors.New("Login needs an interactive handler")
	}
	if !force && !h.hasConfiguredScopes() {
		force = true // --scope asks for more than the stored login has
	}
	if !force {
		if tok, err := h.token(); err == nil {
			resp, err := h.probe(ctx, "Bearer "+tok.AccessToken)
			if err != nil {
				return err
			}
			drain(resp)
			if resp.StatusCode < 300 {
				fmt.Fprintf(h.cfg.Log, "mcpguard: already signed in to %s (use --force to sign in again)\n", h.cfg.ServerURL)
				return nil
			}
		}
	}
	resp, err := h.probe(ctx, "")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		drain(resp)
		if resp.StatusCode < 300 {
			return ErrNoAuthorization
		}
		return fmt.Errorf("%s answered %s instead of asking for authorization", h.cfg.ServerURL, resp.Status)
	}
	unlock, err := h.cfg.Store.Lock(ctx, h.cfg.ServerURL)
	if err != nil {
		drain(resp)
		return err
	}
	defer unlock()
	rec, err := h.cfg.Store.Load(h.cfg.ServerURL)
	if err != nil {
		drain(resp)
		return err
	}
	if err := h.authorizeLocked(ctx, resp.Request, resp, rec); err != nil {
		return err
	}
	// The new token must work.
	h.mu.Lock()
	tok := h.cached.AccessToken
	h.mu.Unlock()
	check, err := h.probe(ctx, "Bearer "+tok)
	if err != nil {
		return err
	}
	drain(check)
	if check.StatusCode >= 300 {
		return fmt.Errorf("%s refused the new token (%s)", h.cfg.ServerURL, check.Status)
	}
	return nil
}

// probe posts an initialize request with the given Authorization header
// (none when empty), and ends the session it may open.
func (h *Handler) probe(ctx context.Context, authorization string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.ServerURL, bytes.NewReader([]byte(probeBody)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := h.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("contacting %s: %w", h.cfg.ServerURL, err)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && resp.StatusCode < 300 {
		del, err := http.NewRequestWithContext(ctx, http.MethodDelete, h.cfg.ServerURL, nil)
		if err == nil {
			del.Header.Set("Mcp-Session-Id", sid)
			del.Header.Set("Authorization", authorization)
			if r, err := h.cfg.HTTPClient.Do(del); err == nil {
				drain(r)
			}
		}
	}
	return resp, nil
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// hasConfiguredScopes reports whether the stored login (if any) was
// granted every scope of Config.Scopes.
func (h *Handler) hasConfiguredScopes() bool {
	if len(h.cfg.Scopes) == 0 {
		return true
	}
	rec, err := h.cfg.Store.Load(h.cfg.ServerURL)
	if err != nil || rec == nil {
		return true // nothing stored: the probe below decides
	}
	return hasScopes(rec.Scopes, strings.Join(h.cfg.Scopes, " "))
}
