package guard

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/internal/netx"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// HTTPOptions configure HTTPMiddleware.
type HTTPOptions struct {
	// MaxBodyBytes bounds a request body; larger requests get 413. Zero
	// means 1 MiB.
	MaxBodyBytes int64
	// AllowedOrigins are the exact Origin values (scheme://host[:port])
	// accepted from browsers. A request without an Origin header (any
	// non-browser client) is not affected. Loopback origins are accepted
	// when the request's Host is loopback too; anything else gets 403, which
	// defeats DNS rebinding.
	AllowedOrigins []string
	// BodyReadTimeout bounds the time to read a request body, so that a
	// client trickling its body cannot hold a connection (slow loris). It is
	// set per request rather than as http.Server.ReadTimeout, which would
	// also cut long-lived SSE response streams. Zero means 30 seconds.
	BodyReadTimeout time.Duration
	// Realm is the realm in WWW-Authenticate challenges; "" means "mcpguard".
	Realm string
	// ResourceMetadataURL, when set, is advertised in WWW-Authenticate
	// challenges (RFC 9728) so that OAuth clients can discover the
	// authorization server.
	ResourceMetadataURL string
	// ChallengeScopes, when set, are the scopes a 401 challenge asks a
	// client to request ("scope" parameter, MCP authorization spec): the
	// least privilege that lets a client work, not every scope there is.
	ChallengeScopes []string
	// Anonymous, when set, is the principal of requests that carry no
	// credential at all (a request with an invalid credential is still
	// refused). It exists for loopback-only test profiles such as the MCP
	// conformance suite, whose client sends no credentials; the caller
	// that sets it must make sure the listener is reachable only from
	// this host. Its requests are authorized and audited like any other,
	// under auth_method "anonymous".
	Anonymous *Principal
	// StepUp, when set, turns a scope-limited principal's refused
	// tools/call or prompts/get into an HTTP 403 insufficient_scope
	// challenge (RFC 6750 §3.1) when the caller could obtain the action
	// with more scopes: it returns the complete scope set to request (the
	// caller's scopes plus those missing), or nil when more scopes would not
	// help, in which case the request continues and is refused in band with
	// ACCESS DENIED as usual. Other principals are never asked about.
	StepUp func(ctx context.Context, p *Principal, a Action, d Decision) []string
	// ClientCerts, when set, authenticates the client certificates of
	// mutual-TLS connections (a Credential of kind ClientCertificate);
	// ClientCertMode says how it combines with tokens.
	ClientCerts Authenticator
	// ClientCertMode is how a client certificate and a token combine; the
	// zero value ignores certificates (tokens only).
	ClientCertMode ClientCertMode
	// Sessions, when set, binds MCP sessions of the session-based (2025)
	// revisions to their owner: a session id presented by another
	// principal gets 404 and a DENIED audit record ("session hijack
	// attempt"), an unknown or terminated one 404, and a request other
	// than initialize without a session id 400. The handler must issue
	// session ids only on responses that pass through this middleware.
	Sessions SessionRegistry
	// MaxStreamsPerPrincipal caps the concurrent requests (open streams)
	// of one principal; more get 429. Zero means no cap.
	MaxStreamsPerPrincipal int
}

// ClientCertMode says how mutual TLS combines with tokens.
type ClientCertMode string

// Client certificate modes.
const (
	// CertIgnored authenticates by token or API key only. A
	// certificate-bound token still needs its certificate.
	CertIgnored ClientCertMode = ""
	// CertOnly authenticates by client certificate alone; a token is not
	// needed and, when sent, is ignored.
	CertOnly ClientCertMode = "mtls"
	// CertAndToken needs both a valid, mapped client certificate and a
	// valid token; the principal is the token's.
	CertAndToken ClientCertMode = "mtls+token"
	// CertOrToken takes a token when one is sent and the client
	// certificate otherwise.
	CertOrToken ClientCertMode = "either"
)

// DefaultMaxBodyBytes is the default request-body bound.
const DefaultMaxBodyBytes = 1 << 20

// SecurityHeaders sets the response headers every mcpguard HTTP response
// carries.
func SecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// envelope is what the HTTP stage needs of a JSON-RPC message: its method
// and, for tools/call, the tool name, so that it can rate-limit per tool and
// answer 429 before the MCP server runs anything.
type envelope struct {
	method string
	tool   string
	args   json.RawMessage // a tools/call's arguments
}

// Reasons a POST body is refused before it reaches the MCP server.
var (
	errBatch     = errors.New("JSON-RPC batches are not supported: send one message per request")
	errMalformed = errors.New("the body is not a single valid JSON-RPC message")
)

// parseEnvelope reads the message in a POST body with go-sdk's own JSON-RPC
// decoder, so that the method charged here is the method the server runs.
// Anything go-sdk might read differently from encoding/json (trailing data,
// batches) is refused, and MCPMiddleware re-checks the tool name.
func parseEnvelope(body []byte) (envelope, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		return envelope{}, errBatch
	}
	if !json.Valid(body) {
		return envelope{}, errMalformed
	}
	msg, err := jsonrpc.DecodeMessage(body)
	if err != nil {
		return envelope{}, errMalformed
	}
	req, ok := msg.(*jsonrpc.Request)
	if !ok {
		return envelope{}, nil // a response to a server request
	}
	e := envelope{method: req.Method}
	if req.Method == "tools/call" || req.Method == "prompts/get" {
		var params struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(req.Params, &params); err != nil {
			return envelope{}, errMalformed
		}
		e.tool = params.Name
		if req.Method == "tools/call" {
			e.args = params.Arguments
		}
	}
	return e, nil
}

// HTTPMiddleware returns middleware for the streamable-HTTP MCP endpoint. It
// bounds the body, validates Origin, authenticates every request
// (Authorization: Bearer, or X-API-Key; never a query parameter), locks out
// sources that keep failing, and rate-limits each JSON-RPC message. Refusals
// are HTTP errors (401 with a Bearer challenge, 403, 413, 429 with
// Retry-After) and are audited. The authenticated caller is handed to
// MCPMiddleware, which must also be installed on the mcp.Server.
//
// The credential headers are removed from the request passed on, so that
// no tool handler or upstream ever sees the caller's secret.
func (g *Guard) HTTPMiddleware(next http.Handler) http.Handler {
	// go-sdk reads the caller's identity from auth.TokenInfo in the request
	// context (it also binds sessions to TokenInfo.UserID); the only way to
	// put one there is its RequireBearerToken middleware, fed here with the
	// principal this middleware has already authenticated.
	inject := auth.RequireBearerToken(func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		c, _ := r.Context().Value(callerKey{}).(*caller)
		if c == nil || c.principal == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{
			UserID: c.principal.ID(),
			Scopes: c.principal.Scopes,
			Extra:  map[string]any{extraKey: c},
		}, nil
	}, &auth.RequireBearerTokenOptions{
		// Expiry was checked by the Authenticator, with its leeway.
		AllowMissingExpiration: true,
	})(next)

	maxBody := g.HTTP.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	bodyTimeout := g.HTTP.BodyReadTimeout
	if bodyTimeout <= 0 {
		bodyTimeout = 30 * time.Second
	}
	streams := &streamLimiter{max: g.HTTP.MaxStreamsPerPrincipal, n: map[string]int{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		ctx := r.Context()
		c := &caller{requestID: newRequestID(), clientAddr: netx.PeerIP(r), transport: "http"}
		w.Header().Set("X-Request-Id", c.requestID)
		rec := &Record{Time: g.now(), Method: "http " + r.Method}

		if origin := r.Header.Get("Origin"); origin != "" && !g.originAllowed(origin, r.Host) {
			rec.Decision, rec.Reason = Denied, "origin not allowed: "+sanitize(origin, 200)
			g.record(ctx, rec, c)
			writeError(w, http.StatusForbidden, "forbidden_origin", "this Origin may not call the MCP endpoint; add it to server.allowed_origins")
			return
		}

		var body []byte
		if r.Method == http.MethodPost {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now().Add(bodyTimeout)) // unsupported writers (tests) just skip it
			var err error
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			if err != nil {
				// Keep the deadline: net/http would otherwise wait for the
				// rest of the body before answering. The connection is done.
				w.Header().Set("Connection", "close")
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					rec.Decision, rec.Reason = Denied, fmt.Sprintf("request body larger than %d bytes", maxBody)
					g.record(ctx, rec, c)
					writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("request body exceeds %d bytes", maxBody))
					return
				}
				rec.Decision, rec.Reason = Denied, "request body not received in time"
				g.record(ctx, rec, c)
				writeError(w, http.StatusBadRequest, "invalid_request", "could not read the request body in time")
				return
			}
			_ = rc.SetReadDeadline(time.Time{})
		}
		var env envelope
		var parseErr error
		if r.Method == http.MethodPost {
			env, parseErr = parseEnvelope(body)
			rec.Method = env.method
			rec.Target = sanitize(env.tool, maxTarget)
		}

		p, ok := g.authenticateHTTP(w, r, c, rec)
		if !ok {
			return
		}
		c.principal = p

		if parseErr != nil {
			rec.Decision, rec.Reason = Denied, parseErr.Error()
			g.record(ctx, rec, c)
			writeError(w, http.StatusBadRequest, "invalid_request", parseErr.Error())
			return
		}
		version := r.Header.Get("Mcp-Protocol-Version")
		if !validVersion(version) {
			rec.Decision, rec.Reason = Denied, "unsupported MCP-Protocol-Version "+sanitize(version, 40)
			g.record(ctx, rec, c)
			writeError(w, http.StatusBadRequest, "invalid_request", "unsupported MCP-Protocol-Version; supported: "+strings.Join(mcp.SupportedProtocolVersions(), ", "))
			return
		}
		if !streams.acquire(p.ID()) {
			rec.Decision, rec.Reason = RateLimited, fmt.Sprintf("more than %d concurrent requests", streams.max)
			g.record(ctx, rec, c)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("at most %d concurrent requests per caller; retry when one ends", streams.max))
			return
		}
		defer streams.release(p.ID())
		tool := ""
		if env.method == "tools/call" {
			tool = env.tool
		}
		lctx, endLimit := g.stage(ctx, StageRateLimit)
		res, err := g.limit(lctx, p, tool)
		endLimit()
		if err != nil {
			rec.Decision, rec.Reason = Failed, err.Error()
			g.record(ctx, rec, c)
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "rate limiting is temporarily unavailable; try again later")
			return
		}
		if !res.Allowed {
			rec.Decision, rec.Reason = RateLimited, rateLimitedReason(res)
			g.record(ctx, rec, c)
			w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(res.RetryAfter)))
			writeError(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("rate limit exceeded; retry after %d seconds", retrySeconds(res.RetryAfter)))
			return
		}
		// Sessions are checked after the rate limit, so that probing
		// session ids costs the prober its quota.
		sid := r.Header.Get("Mcp-Session-Id")
		useSessions := g.HTTP.Sessions != nil && sessionful(version)
		if useSessions && !g.checkSession(w, r, c, rec, sid, env) {
			return
		}
		c.charge(tool)
		if g.stepUp(w, r, c, rec, env) {
			return
		}

		ctx2 := context.WithValue(ctx, callerKey{}, c)
		if useSessions && sid != "" {
			c.sessionID = sid
		}
		if useSessions && sid != "" && !g.live.has(sid) {
			// A live session of this principal that another replica (or
			// this process before a restart) opened.
			ctx2 = context.WithValue(ctx2, elsewhereKey{}, true)
		}
		r2 := r.Clone(ctx2)
		r2.Header.Del("X-API-Key")
		r2.Header.Set("Authorization", "Bearer mcpguard-authenticated")
		if r.Method == http.MethodPost {
			r2.Body = io.NopCloser(bytes.NewReader(body))
			r2.ContentLength = int64(len(body))
		}
		if !useSessions {
			inject.ServeHTTP(w, r2)
			return
		}
		sw := &sessionWriter{ResponseWriter: w, onHeader: func(status int) bool {
			return g.sessionResponse(w, r, c, sid, status, inject)
		}}
		inject.ServeHTTP(sw, r2)
	})
}

// checkSession applies the session binding to a request of a session-based
// revision. It reports whether the request may go on; otherwise it has
// answered and audited.
func (g *Guard) checkSession(w http.ResponseWriter, r *http.Request, c *caller, rec *Record, sid string, env envelope) bool {
	ctx := r.Context()
	if sid == "" {
		if r.Method == http.MethodPost && env.method != "initialize" {
			rec.Decision, rec.Reason = Denied, "missing Mcp-Session-Id"
			g.record(ctx, rec, c)
			writeError(w, http.StatusBadRequest, "invalid_request", "missing Mcp-Session-Id: send initialize first and then the session id it returned")
			return false
		}
		return true // initialize; GET and DELETE are refused by the handler
	}
	// The id is recorded: it is not a credential, and an investigation
	// needs to know which session was aimed at.
	rec.SessionID = sanitize(sid, 128)
	err := g.HTTP.Sessions.Use(ctx, sid, SessionOwner(c.principal))
	switch {
	case errors.Is(err, ErrSessionNotFound):
		rec.Decision, rec.Reason = Denied, "unknown or terminated session"
		g.record(ctx, rec, c)
		writeError(w, http.StatusNotFound, "session_not_found", "the session does not exist or has ended; initialize a new one")
		return false
	case errors.Is(err, ErrSessionOwner):
		// Answered like an unknown session, so that the id's existence is
		// not confirmed to someone else.
		rec.Decision, rec.Reason = Denied, "session hijack attempt"
		g.record(ctx, rec, c)
		writeError(w, http.StatusNotFound, "session_not_found", "the session does not exist or has ended; initialize a new one")
		return false
	case err != nil:
		rec.Decision, rec.Reason = Failed, "session registry unavailable: "+err.Error()
		g.record(ctx, rec, c)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "sessions cannot be checked right now; try again later")
		return false
	}
	return true
}

// sessionResponse runs as the handler's response header is written: it
// registers a session the handler just opened, and records the end of one
// it closed. It returns false when it answered instead (the session could
// not be registered, so it must not be used).
func (g *Guard) sessionResponse(w http.ResponseWriter, r *http.Request, c *caller, sid string, status int, inject http.Handler) bool {
	ctx := r.Context()
	if sid != "" {
		if r.Method == http.MethodDelete && status < 300 {
			g.live.remove(sid)
			if err := g.HTTP.Sessions.Close(ctx, sid); err != nil {
				g.logger().Warn("session: recording the end of a session failed", "err", err)
			}
		}
		return true
	}
	id := w.Header().Get("Mcp-Session-Id")
	if id == "" || status >= 300 {
		return true
	}
	if err := g.HTTP.Sessions.Open(ctx, id, c.principal); err != nil {
		g.logger().Error("session: registering a new session failed", "err", err)
		w.Header().Del("Mcp-Session-Id")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the session could not be opened; try again later")
		return false
	}
	g.live.add(id, c.principal, inject)
	return true
}

// stepUp answers a call the caller's token does not cover, but a token with
// more scopes would, with 403 insufficient_scope, so that an OAuth client
// re-authorizes with the larger scope set (MCP authorization spec, "Scope
// challenge handling"). It reports whether it answered. The decision is the
// Authorizer's, the same one MCPMiddleware would reach.
func (g *Guard) stepUp(w http.ResponseWriter, r *http.Request, c *caller, rec *Record, env envelope) bool {
	// Only a scope-limited principal (a token whose scopes narrowed its
	// roles) can gain by re-authorizing; for every other caller the call
	// is decided once, in band, and costs no second authorization here.
	if g.HTTP.StepUp == nil || env.tool == "" || !c.principal.ScopeLimited {
		return false
	}
	var a Action
	switch env.method {
	case "tools/call", "prompts/get":
		a = Action{Method: env.method, Target: env.tool, Arguments: env.args, Request: &RequestInfo{
			Time: g.now(), ClientIP: c.clientAddr, Transport: c.transport, ProtocolVersion: r.Header.Get("Mcp-Protocol-Version"),
		}}
	default:
		return false
	}
	d := g.Authorizer.Authorize(r.Context(), c.principal, a)
	if d.Allowed {
		return false
	}
	scopes := g.HTTP.StepUp(r.Context(), c.principal, a, d)
	if len(scopes) == 0 {
		return false
	}
	scope := strings.Join(scopes, " ")
	rec.Decision, rec.Reason = Denied, d.Reason+"; insufficient scope, step-up to "+scope+" requested"
	rec.RequiredRoles, rec.Policies = d.RequiredRoles, d.Policies
	g.record(r.Context(), rec, c)
	description := "this call needs scope " + scope + "; authorize again with it"
	if d.MFAMaxAge > 0 {
		description = "this call needs a second factor passed in the last " + d.MFAMaxAge.String() + "; authorize again with scope " + scope
	}
	params := []string{`error="insufficient_scope"`, fmt.Sprintf("scope=%q", scope)}
	if g.HTTP.ResourceMetadataURL != "" {
		params = append(params, fmt.Sprintf("resource_metadata=%q", g.HTTP.ResourceMetadataURL))
	}
	params = append(params, fmt.Sprintf("error_description=%q", description))
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	writeError(w, http.StatusForbidden, "insufficient_scope", description)
	return true
}

// authenticateHTTP is the HTTP authentication stage: lockout, client
// certificate and credential (as ClientCertMode combines them),
// Authenticator, certificate binding. On refusal it writes the response and
// the audit record (rec, completed) and returns ok=false.
func (g *Guard) authenticateHTTP(w http.ResponseWriter, r *http.Request, c *caller, rec *Record) (p *Principal, ok bool) {
	ctx := r.Context()
	source := netx.SourceKey(c.clientAddr)
	if g.Lockout != nil {
		if wait, locked := g.Lockout.Locked(ctx, source); locked {
			rec.Decision, rec.Reason = AuthFailed, "source locked out after repeated authentication failures"
			g.record(ctx, rec, c)
			w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(wait)))
			writeError(w, http.StatusTooManyRequests, "too_many_failures", "too many failed authentication attempts; retry later")
			return nil, false
		}
	}
	mode := g.HTTP.ClientCertMode
	if g.HTTP.ClientCerts == nil {
		mode = CertIgnored
	}
	cert := VerifiedClientCert(r)
	cred, found := credentialFrom(r)
	useCert := mode == CertOnly || mode == CertAndToken || (mode == CertOrToken && !found)
	// An anonymous caller (HTTPOptions.Anonymous) presents nothing: no
	// credential, and no certificate where certificates count.
	if !found && g.HTTP.Anonymous != nil && r.Header.Get("Authorization") == "" && (mode == CertIgnored || (mode == CertOrToken && cert == nil)) {
		return g.HTTP.Anonymous, true
	}
	if useCert && cert == nil {
		rec.Decision, rec.Reason = AuthFailed, "no client certificate"
		g.record(ctx, rec, c)
		g.challenge(w, "", "authentication required: connect with a client certificate issued by the trusted CA")
		return nil, false
	}
	if useCert {
		p, ok = g.authenticateWith(w, r, c, rec, source, Credential{Kind: ClientCertificate, Certificate: cert})
		if !ok || mode != CertAndToken {
			return p, ok
		}
	}
	if !found {
		rec.Decision, rec.Reason = AuthFailed, "no credentials"
		g.record(ctx, rec, c)
		g.challenge(w, "", "authentication required: send Authorization: Bearer <token> or X-API-Key: <key>")
		return nil, false
	}
	p, ok = g.authenticateWith(w, r, c, rec, source, cred)
	if !ok {
		return nil, false
	}
	if p.BoundCertificate != "" && (cert == nil || subtle.ConstantTimeCompare([]byte(CertThumbprint(cert)), []byte(p.BoundCertificate)) != 1) {
		// RFC 8705 §3: a certificate-bound token is only good with the
		// certificate it was issued to.
		rec.Decision, rec.Reason = AuthFailed, "certificate-bound token presented without its certificate"
		c.principal = p
		g.record(ctx, rec, c)
		c.principal = nil
		g.challenge(w, "invalid_token", "this token is bound to a client certificate: present it over mutual TLS")
		return nil, false
	}
	return p, true
}

// authenticateWith runs the Authenticator (or, for a client certificate,
// HTTPOptions.ClientCerts) on cred, with the lockout and audit of a
// refusal.
func (g *Guard) authenticateWith(w http.ResponseWriter, r *http.Request, c *caller, rec *Record, source string, cred Credential) (*Principal, bool) {
	ctx := r.Context()
	authn := g.Authenticator
	if cred.Kind == ClientCertificate {
		authn = g.HTTP.ClientCerts
	}
	actx, endAuthn := g.stage(ctx, StageAuthenticate)
	p, err := authn.Authenticate(actx, cred)
	endAuthn()
	if err == nil {
		return p, true
	}
	if authFailure(rec, err) {
		g.record(ctx, rec, c)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "authentication is temporarily unavailable; try again later")
		return nil, false
	}
	if g.Lockout != nil {
		if wait, locked := g.Lockout.Failure(ctx, source); locked {
			rec.Reason += fmt.Sprintf("; source locked out for %ds", retrySeconds(wait))
		}
	}
	g.record(ctx, rec, c)
	if cred.Kind == ClientCertificate {
		g.challenge(w, "invalid_client_certificate", "the client certificate is not accepted here")
		return nil, false
	}
	g.challenge(w, "invalid_token", "the credential is invalid, expired or revoked")
	return nil, false
}

// VerifiedClientCert returns the client certificate of r's connection when
// the TLS handshake verified it against the trusted client CAs, else nil.
func VerifiedClientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}

// RequirePrincipal returns middleware for mcpguard's own HTTP endpoints
// (metrics, administration) that authenticates the request exactly as the
// MCP endpoint does (lockout, 401 challenge, audit) and then lets through
// only principals for which allow is true; others get 403. Every decision is
// audited with method set to name; a request that cannot be audited is
// refused.
func (g *Guard) RequirePrincipal(name string, allow func(*Principal) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		ctx := r.Context()
		c := &caller{requestID: newRequestID(), clientAddr: netx.PeerIP(r), transport: "http"}
		w.Header().Set("X-Request-Id", c.requestID)
		rec := &Record{Time: g.now(), Method: name}
		p, ok := g.authenticateHTTP(w, r, c, rec)
		if !ok {
			return
		}
		c.principal = p
		if !allow(p) {
			rec.Decision, rec.Reason = Denied, "principal may not use "+name
			g.record(ctx, rec, c)
			writeError(w, http.StatusForbidden, "forbidden", "your credential does not grant access to "+name)
			return
		}
		rec.Decision, rec.Reason = Allowed, "principal may use "+name
		if err := g.record(ctx, rec, c); err != nil {
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the request could not be audited and was refused")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type callerKey struct{}

// credentialFrom reads the request's credential: Authorization: Bearer
// first, then X-API-Key. Query parameters are never consulted.
func credentialFrom(r *http.Request) (Credential, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, found := strings.Cut(h, " ")
		if found && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
			return Credential{Kind: Bearer, Secret: strings.TrimSpace(token)}, true
		}
		return Credential{}, false
	}
	if k := r.Header.Get("X-API-Key"); k != "" {
		return Credential{Kind: APIKeyHeader, Secret: strings.TrimSpace(k)}, true
	}
	return Credential{}, false
}

func (g *Guard) originAllowed(origin, requestHost string) bool {
	if slices.Contains(g.HTTP.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return netx.IsLoopbackHost(u.Host) && netx.IsLoopbackHost(requestHost)
}

// challenge writes a 401 with a Bearer challenge (RFC 6750 §3).
func (g *Guard) challenge(w http.ResponseWriter, errCode, description string) {
	realm := g.HTTP.Realm
	if realm == "" {
		realm = "mcpguard"
	}
	params := []string{fmt.Sprintf("realm=%q", realm)}
	if g.HTTP.ResourceMetadataURL != "" {
		params = append(params, fmt.Sprintf("resource_metadata=%q", g.HTTP.ResourceMetadataURL))
	}
	if len(g.HTTP.ChallengeScopes) > 0 {
		params = append(params, fmt.Sprintf("scope=%q", strings.Join(g.HTTP.ChallengeScopes, " ")))
	}
	if errCode != "" {
		params = append(params, fmt.Sprintf("error=%q", errCode), fmt.Sprintf("error_description=%q", description))
	}
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	if errCode == "" {
		errCode = "unauthorized"
	}
	writeError(w, http.StatusUnauthorized, errCode, description)
}

// writeError writes an OAuth-style JSON error body.
func writeError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
