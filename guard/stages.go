package guard

import (
	"context"
	"encoding/json"
	"time"
)

// LimitResult is a rate limiter's answer for one request.
type LimitResult struct {
	// Allowed is false when the request must be refused.
	Allowed bool
	// RetryAfter is how long the caller should wait before retrying, when
	// Allowed is false.
	RetryAfter time.Duration
	// Scope names the bucket that refused the request: "identity", "key" or
	// "tool". Empty when allowed.
	Scope string
}

// Limiter decides whether a principal may make one more request now.
// tool is the tool name for tools/call and empty otherwise. A Limiter that
// cannot reach its backend returns an error, and the request fails closed.
type Limiter interface {
	Limit(ctx context.Context, p *Principal, tool string) (LimitResult, error)
}

// Lockout throttles sources that keep failing authentication. source is the
// client's network address (without port) or another stable origin key.
type Lockout interface {
	// Locked reports whether source is locked out and for how long.
	Locked(ctx context.Context, source string) (retryAfter time.Duration, locked bool)
	// Failure records one failed authentication from source and reports
	// whether source is now locked out and for how long.
	Failure(ctx context.Context, source string) (retryAfter time.Duration, locked bool)
}

// Action is what a principal asks to do: an MCP method applied to a target.
// Listing methods are authorized item by item with the action that would use
// the item: tools/list asks {tools/call, name} for each tool.
type Action struct {
	// Method is the MCP method, e.g. "tools/call", "resources/read",
	// "prompts/get".
	Method string
	// Target is the tool name, resource URI or prompt name.
	Target string
	// Arguments are a tools/call's arguments, as the raw JSON object the
	// caller sent; nil for other methods and when Listing.
	Arguments json.RawMessage
	// Listing is true when the action is asked about an item of a list
	// result (tools/list, resources/list, ...), whose use would have
	// arguments not known yet. An Authorizer must then answer whether
	// some use of the item could be allowed: a listed item is one the
	// caller may use, and an item hidden from the list must be refused
	// whatever its arguments.
	Listing bool
	// Request describes where the request comes from, for attribute
	// conditions (time, network, transport); nil when unknown.
	Request *RequestInfo
}

// RequestInfo is what the pipeline knows of a request besides its
// principal and action.
type RequestInfo struct {
	// Time is when the request arrived.
	Time time.Time
	// ClientIP is the peer's IP address ("" on stdio).
	ClientIP string
	// Transport is "http" or "stdio".
	Transport string
	// ProtocolVersion is the MCP protocol revision the session negotiated
	// (or the request's MCP-Protocol-Version header), if known.
	ProtocolVersion string
}

// Permission returns the permission string the action requires, such as
// "tools:call:delete_users", "resources:read:file:///x" or
// "prompts:get:summary".
func (a Action) Permission() string {
	switch a.Method {
	case "tools/call":
		return "tools:call:" + a.Target
	case "resources/read":
		return "resources:read:" + a.Target
	case "prompts/get":
		return "prompts:get:" + a.Target
	}
	return a.Method + ":" + a.Target
}

// Decision is an Authorizer's answer. An Authorizer may share its slices
// between decisions (authz.RBAC does), so callers must not modify them.
type Decision struct {
	// Allowed is true only when a rule grants the action.
	Allowed bool
	// Reason explains the decision in words safe to show the caller and to
	// audit.
	Reason string
	// RequiredRoles lists roles that would be granted the action, when known.
	RequiredRoles []string
	// Policies names the rules that determined the decision, when known.
	Policies []string
	// MissingScopes lists OAuth scopes the principal lacks and a rule
	// requires, when a scope is what refused the action.
	MissingScopes []string
	// MFAMaxAge, on a refusal, says that a second authentication factor
	// completed no longer than this ago would allow the action (a step-up
	// rule, see package policy). Zero otherwise.
	MFAMaxAge time.Duration
}

// Authorizer decides whether a principal may perform an action. It must deny
// anything no rule grants. The same Authorizer filters list results and
// decides calls, so a tool hidden from tools/list can never be called.
type Authorizer interface {
	Authorize(ctx context.Context, p *Principal, a Action) Decision
}

// Outcome is the decision recorded in an audit record.
type Outcome string

// Audit outcomes.
const (
	Allowed     Outcome = "ALLOWED"
	Denied      Outcome = "DENIED"
	AuthFailed  Outcome = "AUTH_FAILED"
	RateLimited Outcome = "RATE_LIMITED"
	// Failed records a request refused for an internal failure, such as an
	// unreachable store, before any decision could be made.
	Failed Outcome = "ERROR"
)

// Record is one audit record: who did what, when, from where, and with what
// decision. It never holds a secret: arguments are summarized by ArgsDigest
// and by the allow-listed fields in Args.
type Record struct {
	Time          time.Time      `json:"ts"`
	RequestID     string         `json:"request_id,omitempty"`
	Subject       string         `json:"user,omitempty"`
	Issuer        string         `json:"issuer,omitempty"`
	AuthMethod    AuthMethod     `json:"auth_method,omitempty"`
	KeyID         string         `json:"key_id,omitempty"`
	PreviousKey   bool           `json:"key_previous_secret,omitempty"`
	Roles         []string       `json:"roles,omitempty"`
	ClientAddr    string         `json:"client_addr,omitempty"`
	Transport     string         `json:"transport,omitempty"`
	SessionID     string         `json:"session_id,omitempty"`
	Method        string         `json:"method,omitempty"`
	Target        string         `json:"target,omitempty"`
	Decision      Outcome        `json:"decision"`
	Reason        string         `json:"reason,omitempty"`
	RequiredRoles []string       `json:"required_roles,omitempty"`
	Policies      []string       `json:"policies,omitempty"`
	Duration      time.Duration  `json:"duration_ns,omitempty"`
	ToolError     bool           `json:"tool_error,omitempty"`
	Error         string         `json:"error,omitempty"`
	ArgsDigest    string         `json:"args_sha256,omitempty"`
	Args          map[string]any `json:"args,omitempty"`
}

// AuditSink stores audit records. Record must be safe for concurrent use.
// When Record fails for a request that would otherwise run, the request is
// refused: mcpguard does not execute what it cannot audit.
type AuditSink interface {
	Record(ctx context.Context, r *Record) error
}
