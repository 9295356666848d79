package guard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCPOptions configure MCPMiddleware for one transport.
type MCPOptions struct {
	// Transport names the transport in audit records: "http" or "stdio".
	Transport string
	// Credential authenticates requests that did not come through
	// HTTPMiddleware: on stdio it is read from the environment (MCP_API_KEY
	// or MCP_AUTH_TOKEN). Nil means such requests are refused.
	Credential *Credential
}

// extraKey is the auth.TokenInfo.Extra key under which HTTPMiddleware hands
// the authenticated caller to MCPMiddleware.
const extraKey = "mcpguard.caller"

// handshake methods may run before authentication on transports without
// HTTP (stdio): they reveal nothing but the server's name and capabilities.
func isHandshake(method string) bool {
	switch method {
	case "initialize", "ping", "notifications/initialized", "server/discover":
		return true
	}
	return false
}

// sessionMethods are open to every authenticated principal: they concern the
// connection itself, not a tool, resource or prompt.
func isSessionMethod(method string) bool {
	switch method {
	case "initialize", "ping", "server/discover", "logging/setLevel":
		return true
	}
	return strings.HasPrefix(method, "notifications/")
}

// MCPMiddleware returns go-sdk receiving middleware that authorizes and
// audits every MCP method, and authenticates and rate-limits requests that
// did not pass HTTPMiddleware (stdio). Install it with
// mcp.Server.AddReceivingMiddleware, outermost.
func (g *Guard) MCPMiddleware(opts MCPOptions) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			c := callerFromRequest(req)
			if c == nil {
				if isHandshake(method) {
					return next(ctx, method, req)
				}
				var err error
				if c, err = g.authenticateInBand(ctx, method, req, opts); err != nil {
					return nil, err
				}
			}
			return g.authorize(ctx, method, req, c, next)
		}
	}
}

func callerFromRequest(req mcp.Request) *caller {
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return nil
	}
	c, _ := extra.TokenInfo.Extra[extraKey].(*caller)
	return c
}

func sessionID(req mcp.Request) string {
	if s := req.GetSession(); s != nil {
		return s.ID()
	}
	return ""
}

// authenticateInBand authenticates and rate-limits a request that carries no
// HTTP-level identity, using the transport's configured credential.
func (g *Guard) authenticateInBand(ctx context.Context, method string, req mcp.Request, opts MCPOptions) (*caller, error) {
	start := g.now()
	c := &caller{requestID: newRequestID(), transport: opts.Transport}
	// The record is needed only when the request is refused here.
	newRecord := func() *Record {
		return &Record{Time: start, Method: method, Target: truncate(targetOf(method, req), maxTarget), SessionID: sessionID(req)}
	}
	if opts.Credential == nil || opts.Credential.Secret == "" {
		rec := newRecord()
		rec.Decision, rec.Reason = AuthFailed, "no credentials"
		g.record(ctx, rec, c)
		return nil, &jsonrpc.Error{Code: CodeUnauthenticated, Message: "authentication required: set MCP_API_KEY or MCP_AUTH_TOKEN in the server's environment"}
	}
	actx, endAuthn := g.stage(ctx, StageAuthenticate)
	p, err := g.Authenticator.Authenticate(actx, *opts.Credential)
	endAuthn()
	if err != nil {
		rec := newRecord()
		internal := authFailure(rec, err)
		g.record(ctx, rec, c)
		if internal {
			return nil, &jsonrpc.Error{Code: CodeUnavailable, Message: "authentication is temporarily unavailable; try again later"}
		}
		return nil, &jsonrpc.Error{Code: CodeUnauthenticated, Message: "authentication failed: the credential in MCP_API_KEY or MCP_AUTH_TOKEN is invalid, expired or revoked"}
	}
	c.principal = p
	tool := ""
	if method == "tools/call" {
		tool = targetOf(method, req)
	}
	lctx, endLimit := g.stage(ctx, StageRateLimit)
	res, err := g.limit(lctx, p, tool)
	endLimit()
	if err != nil || !res.Allowed {
		return nil, g.refuseLimit(ctx, newRecord(), c, res, err)
	}
	c.charge(tool)
	return c, nil
}

func rateLimitError(res LimitResult, now time.Time) error {
	secs := retrySeconds(res.RetryAfter)
	reset := now.Add(time.Duration(secs) * time.Second).UTC().Format(time.RFC3339)
	data, _ := json.Marshal(map[string]any{"retry_after_seconds": secs, "reset_at": reset, "scope": res.Scope})
	return &jsonrpc.Error{
		Code:    CodeRateLimited,
		Message: fmt.Sprintf("rate limit exceeded: retry after %d seconds (at %s)", secs, reset),
		Data:    data,
	}
}

func auditUnavailable() error {
	return &jsonrpc.Error{Code: CodeUnavailable, Message: "the request could not be audited and was refused; try again later"}
}

// targetOf extracts the tool name, resource URI or prompt name of a request.
func targetOf(method string, req mcp.Request) string {
	switch p := req.GetParams().(type) {
	case *mcp.CallToolParamsRaw:
		return p.Name
	case *mcp.ReadResourceParams:
		return p.URI
	case *mcp.SubscribeParams:
		return p.URI
	case *mcp.UnsubscribeParams:
		return p.URI
	case *mcp.GetPromptParams:
		return p.Name
	case *mcp.CompleteParams:
		if p.Ref != nil {
			if p.Ref.Type == "ref/resource" {
				return p.Ref.URI
			}
			return p.Ref.Name
		}
	}
	return ""
}

// actionOf maps a request to the Action it needs, or ok=false when the
// method is not one a principal can be granted (deny by default).
func actionOf(method string, req mcp.Request) (Action, bool) {
	target := targetOf(method, req)
	switch method {
	case "tools/call":
		return Action{Method: "tools/call", Target: target}, true
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return Action{Method: "resources/read", Target: target}, true
	case "prompts/get":
		return Action{Method: "prompts/get", Target: target}, true
	case "completion/complete":
		if p, ok := req.GetParams().(*mcp.CompleteParams); ok && p.Ref != nil {
			if p.Ref.Type == "ref/resource" {
				return Action{Method: "resources/read", Target: target}, true
			}
			return Action{Method: "prompts/get", Target: target}, true
		}
	}
	return Action{}, false
}

// requestInfo describes req's origin for the Authorizer's attribute
// conditions.
func requestInfo(c *caller, req mcp.Request, at time.Time) *RequestInfo {
	info := &RequestInfo{Time: at, ClientIP: c.clientAddr, Transport: c.transport}
	if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss != nil {
		if params := ss.InitializeParams(); params != nil {
			info.ProtocolVersion = params.ProtocolVersion
		}
	}
	if extra := req.GetExtra(); info.ProtocolVersion == "" && extra != nil && extra.Header != nil {
		info.ProtocolVersion = extra.Header.Get("Mcp-Protocol-Version")
	}
	return info
}

func kindOf(a Action) string {
	switch a.Method {
	case "tools/call":
		return "Tool"
	case "resources/read":
		return "Resource"
	}
	return "Prompt"
}

// principalKey is the context key of the authenticated principal handed to
// handlers.
type principalKey struct{}

// PrincipalFromContext returns the principal MCPMiddleware authenticated
// for the request whose handler received ctx, or nil. Handlers that keep
// per-caller state (the gateway's per-user upstreams) key it by its ID.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// authorize is stages 3 and 4 (authorize, audit) around execution.
func (g *Guard) authorize(ctx context.Context, method string, req mcp.Request, c *caller, next mcp.MethodHandler) (mcp.Result, error) {
	ctx = context.WithValue(ctx, principalKey{}, c.principal)
	start := g.now()
	rec := &Record{Time: start, Method: method, SessionID: cmp.Or(sessionID(req), c.sessionID)}
	p := c.principal

	switch method {
	case "tools/list", "resources/list", "resources/templates/list", "prompts/list":
		res, err := g.execute(ctx, method, req, next)
		if err == nil {
			actx, endAuthz := g.stage(ctx, StageAuthorize)
			visible, total := g.filterList(actx, p, requestInfo(c, req, start), res)
			endAuthz()
			rec.Reason = fmt.Sprintf("%d of %d items visible", visible, total)
		}
		return g.finish(ctx, rec, c, start, res, err)
	}

	if isSessionMethod(method) {
		if method == "ping" || strings.HasPrefix(method, "notifications/") {
			// Liveness and client notifications grant nothing: no decision
			// to record.
			return next(ctx, method, req)
		}
		res, err := g.execute(ctx, method, req, next)
		rec.Reason = "session method"
		return g.finish(ctx, rec, c, start, res, err)
	}
	if method == "subscriptions/listen" {
		return g.authorizeListen(ctx, req, c, rec, next)
	}

	a, ok := actionOf(method, req)
	if !ok {
		rec.Decision, rec.Reason = Denied, "method not permitted: "+sanitize(method, 100)
		if err := g.record(ctx, rec, c); err != nil {
			return nil, auditUnavailable()
		}
		return nil, &jsonrpc.Error{Code: CodeForbidden, Message: "method not permitted by mcpguard"}
	}
	rec.Target = truncate(a.Target, maxTarget)
	a.Request = requestInfo(c, req, start)
	if params, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok {
		rec.ArgsDigest, rec.Args = g.summarizeArgs(params.Arguments)
		a.Arguments = params.Arguments
	}
	// The tool that runs must be the tool the rate limiter was charged for.
	// HTTPMiddleware charges on its own reading of the body; should go-sdk
	// have read the message differently, charge again for the real tool.
	if method == "tools/call" && !c.spendCharge(a.Target) {
		lctx, endLimit := g.stage(ctx, StageRateLimit)
		res, err := g.limit(lctx, p, a.Target)
		endLimit()
		if err != nil || !res.Allowed {
			return nil, g.refuseLimit(ctx, rec, c, res, err)
		}
	}
	d := g.decide(ctx, p, a)
	rec.Reason, rec.Policies = d.Reason, d.Policies
	if !d.Allowed {
		rec.Decision, rec.RequiredRoles = Denied, slices.Clone(d.RequiredRoles)
		rec.Duration = g.now().Sub(start)
		if err := g.record(ctx, rec, c); err != nil {
			return nil, auditUnavailable()
		}
		text := AccessDeniedText(kindOf(a), a.Target, d, g.heldRoles(p))
		if method == "tools/call" {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil
		}
		return nil, &jsonrpc.Error{Code: CodeForbidden, Message: text}
	}
	res, err := g.execute(ctx, method, req, next)
	return g.finish(ctx, rec, c, start, res, err)
}

// decide is the authorize stage for one action: input bounds first, then
// the Authorizer.
func (g *Guard) decide(ctx context.Context, p *Principal, a Action) Decision {
	if reason := checkTarget(a); reason != "" {
		return Decision{Reason: reason, Policies: []string{"input-bounds"}}
	}
	actx, endAuthz := g.stage(ctx, StageAuthorize)
	defer endAuthz()
	return g.Authorizer.Authorize(actx, p, a)
}

// checkTarget refuses targets that no rule should be asked about: overlong
// ones, and resource URIs with a ".." path segment, which a glob such as
// "resources:read:file:///public/*" would otherwise match while naming a
// file outside /public.
func checkTarget(a Action) string {
	if len(a.Target) > maxTarget {
		return fmt.Sprintf("target longer than %d bytes", maxTarget)
	}
	if a.Method == "resources/read" && hasDotDotSegment(a.Target) {
		return `resource URI with a ".." path segment`
	}
	return ""
}

func hasDotDotSegment(uri string) bool {
	if u, err := url.PathUnescape(uri); err == nil {
		uri = u
	}
	for _, seg := range strings.FieldsFunc(uri, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return true
		}
	}
	return false
}

// refuseLimit records a rate-limit refusal (or limiter failure) found in
// the MCP stage and returns the JSON-RPC error for it.
func (g *Guard) refuseLimit(ctx context.Context, rec *Record, c *caller, res LimitResult, err error) error {
	if err != nil {
		rec.Decision, rec.Reason = Failed, err.Error()
		g.record(ctx, rec, c)
		return &jsonrpc.Error{Code: CodeUnavailable, Message: "rate limiting is temporarily unavailable; try again later"}
	}
	rec.Decision, rec.Reason = RateLimited, rateLimitedReason(res)
	if err := g.record(ctx, rec, c); err != nil {
		return auditUnavailable()
	}
	return rateLimitError(res, g.now())
}

// authorizeListen decides subscriptions/listen: every resource it subscribes
// to must be readable, as for resources/subscribe. The decision is recorded
// before the (long-lived) stream starts.
func (g *Guard) authorizeListen(ctx context.Context, req mcp.Request, c *caller, rec *Record, next mcp.MethodHandler) (mcp.Result, error) {
	var uris []string
	if p, ok := req.GetParams().(*mcp.SubscriptionsListenParams); ok && p.Notifications != nil {
		uris = p.Notifications.ResourceSubscriptions
	}
	info := requestInfo(c, req, rec.Time)
	for _, uri := range uris {
		a := Action{Method: "resources/read", Target: uri, Request: info}
		if d := g.decide(ctx, c.principal, a); !d.Allowed {
			rec.Target = truncate(uri, maxTarget)
			rec.Decision, rec.Reason, rec.Policies, rec.RequiredRoles = Denied, d.Reason, d.Policies, slices.Clone(d.RequiredRoles)
			if err := g.record(ctx, rec, c); err != nil {
				return nil, auditUnavailable()
			}
			return nil, &jsonrpc.Error{Code: CodeForbidden, Message: AccessDeniedText("Resource", uri, d, g.heldRoles(c.principal))}
		}
	}
	rec.Decision, rec.Reason = Allowed, fmt.Sprintf("%d resource subscriptions authorized", len(uris))
	if err := g.record(ctx, rec, c); err != nil {
		return nil, auditUnavailable()
	}
	return g.execute(ctx, "subscriptions/listen", req, next)
}

// errAuditNotReady is returned when the audit sink reports that it cannot
// write, so the request is refused before it runs.
var errAuditNotReady = &jsonrpc.Error{Code: CodeUnavailable, Message: "the audit log cannot be written; the request was refused and not run"}

// execute runs the next handler as the execute stage, unless the audit sink
// already knows it cannot record the outcome.
func (g *Guard) execute(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	if err := g.auditReady(); err != nil {
		g.logger().Error("refusing request: audit sink not ready", "err", err, "method", method)
		return nil, errAuditNotReady
	}
	ectx, end := g.stage(ctx, StageExecute)
	defer end()
	return next(ectx, method, req)
}

// finish writes the ALLOWED record of an executed request. If the record
// cannot be written the result is withheld from the caller.
func (g *Guard) finish(ctx context.Context, rec *Record, c *caller, start time.Time, res mcp.Result, err error) (mcp.Result, error) {
	rec.Decision = Allowed
	rec.Duration = g.now().Sub(start)
	if err == errAuditNotReady {
		// Refused before it ran; the record goes to the sink's reserve
		// when it has one (a full disk), and is lost only if it has not.
		rec.Decision, rec.Reason = Failed, "refused before running: the audit log is not ready"
		if rerr := g.auditReady(); rerr != nil {
			rec.Reason += " (" + rerr.Error() + ")"
		}
		g.record(ctx, rec, c)
		return nil, err
	}
	if err != nil {
		rec.Error = truncate(err.Error(), 512)
	} else if ctr, ok := res.(*mcp.CallToolResult); ok && ctr.IsError {
		rec.ToolError = true
	}
	if aerr := g.record(ctx, rec, c); aerr != nil {
		return nil, auditUnavailable()
	}
	return res, err
}

// filterList removes from a list result every item the principal may not
// use, deciding each with the same Authorize call that decides its use.
func (g *Guard) filterList(ctx context.Context, p *Principal, info *RequestInfo, res mcp.Result) (visible, total int) {
	allowed := func(a Action) bool {
		a.Listing, a.Request = true, info
		return g.Authorizer.Authorize(ctx, p, a).Allowed
	}
	switch r := res.(type) {
	case *mcp.ListToolsResult:
		total = len(r.Tools)
		r.Tools = filter(r.Tools, func(t *mcp.Tool) bool { return allowed(Action{Method: "tools/call", Target: t.Name}) })
		visible = len(r.Tools)
	case *mcp.ListResourcesResult:
		total = len(r.Resources)
		r.Resources = filter(r.Resources, func(x *mcp.Resource) bool { return allowed(Action{Method: "resources/read", Target: x.URI}) })
		visible = len(r.Resources)
	case *mcp.ListResourceTemplatesResult:
		total = len(r.ResourceTemplates)
		r.ResourceTemplates = filter(r.ResourceTemplates, func(x *mcp.ResourceTemplate) bool {
			return allowed(Action{Method: "resources/read", Target: x.URITemplate})
		})
		visible = len(r.ResourceTemplates)
	case *mcp.ListPromptsResult:
		total = len(r.Prompts)
		r.Prompts = filter(r.Prompts, func(x *mcp.Prompt) bool { return allowed(Action{Method: "prompts/get", Target: x.Name}) })
		visible = len(r.Prompts)
	}
	return visible, total
}

// filter keeps the items for which keep is true, in a new slice so that a
// result shared with other sessions is never modified in place.
func filter[T any](items []T, keep func(T) bool) []T {
	out := make([]T, 0, len(items))
	for _, it := range items {
		if keep(it) {
			out = append(out, it)
		}
	}
	return out
}
