package guard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpguard/mcpguard/internal/safetext"
)

// Guard joins the pipeline's stages. Authenticator, Authorizer and Audit are
// required; Limiter and Lockout are optional (nil disables them). A Guard
// must not be modified after its middleware is first used.
type Guard struct {
	Authenticator Authenticator
	Limiter       Limiter
	Lockout       Lockout
	Authorizer    Authorizer
	Audit         AuditSink

	// ArgumentFields names the tool arguments recorded in clear in audit
	// records (top-level fields only, values truncated). Every other argument
	// is represented only by the SHA-256 digest of the canonical arguments.
	ArgumentFields []string

	// HTTP settings, used by HTTPMiddleware.
	HTTP HTTPOptions

	// Observer watches the stages, for metrics and tracing. Nil means none.
	Observer Observer

	// Logger receives operational messages (not audit records). Nil
	// discards them.
	Logger *slog.Logger

	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// live tracks the MCP sessions this process opened (SweepSessions).
	live liveSessions
}

// JSON-RPC error codes mcpguard returns, in the implementation-defined
// server-error range.
const (
	// CodeUnauthenticated: no valid credential was presented.
	CodeUnauthenticated = -32001
	// CodeForbidden: the principal may not perform the request.
	CodeForbidden = -32003
	// CodeRateLimited: a rate limit or lockout refused the request; the
	// error's data holds retry_after_seconds and reset_at.
	CodeRateLimited = -32029
	// CodeUnavailable: an internal dependency (store, audit sink) failed and
	// the request was refused rather than run unchecked or unaudited.
	CodeUnavailable = -32050
)

func (g *Guard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Guard) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// caller is what the pipeline knows about the request's origin once it has
// authenticated it.
type caller struct {
	principal  *Principal
	clientAddr string
	requestID  string
	transport  string

	// sessionID is the session the HTTP middleware checked to be the
	// caller's. The audit takes it from here when go-sdk's session does
	// not carry it (a session continued from another replica).
	sessionID string

	// chargedTool is the tool the rate limiter was charged for, and
	// charged says that charge has not been used yet. MCPMiddleware uses
	// it to make sure the tool that runs is the tool that was paid for.
	chargedTool string
	charged     atomic.Bool
}

// charge notes that the limiter was charged for one request to tool ("" for
// a request that is not a tools/call).
func (c *caller) charge(tool string) {
	c.chargedTool = tool
	c.charged.Store(true)
}

// spendCharge reports whether the limiter was charged for tool and not yet
// spent, and spends it.
func (c *caller) spendCharge(tool string) bool {
	return c.chargedTool == tool && c.charged.CompareAndSwap(true, false)
}

// maxTarget bounds a tool name, resource URI or prompt name: longer ones are
// refused before authorization and cut in audit records.
const maxTarget = 1024

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hexString(b[:])
}

// record completes r with what is known of the caller and writes it.
func (g *Guard) record(ctx context.Context, r *Record, c *caller) error {
	if c != nil {
		r.RequestID = c.requestID
		r.ClientAddr = c.clientAddr
		r.Transport = c.transport
		if p := c.principal; p != nil {
			r.Subject, r.Issuer, r.AuthMethod, r.KeyID = p.Subject, p.Issuer, p.Method, p.KeyID
			r.PreviousKey = p.PreviousSecret
			r.Roles = g.heldRoles(p)
		}
	}
	_, end := g.stage(ctx, StageAudit)
	err := g.Audit.Record(ctx, r)
	end()
	g.observer().Recorded(ctx, r, err)
	if err != nil {
		g.logger().Error("audit write failed", "err", err, "request_id", r.RequestID)
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func (g *Guard) observer() Observer {
	if g.Observer != nil {
		return g.Observer
	}
	return noopObserver{}
}

// noStageEnd is what stage returns without an Observer: the pipeline then
// neither reads the clock nor allocates a closure per stage.
var noStageEnd = func() {}

// stage tells the Observer that stage s starts; call the returned function
// when it ends.
func (g *Guard) stage(ctx context.Context, s Stage) (context.Context, func()) {
	if g.Observer == nil {
		return ctx, noStageEnd
	}
	start := time.Now()
	ctx, end := g.observer().StartStage(ctx, s)
	return ctx, func() { end(time.Since(start)) }
}

// ReadyChecker is implemented by AuditSinks that can tell in advance that
// they cannot write (a full disk, a failing fsync). The pipeline refuses to
// execute a request while Ready returns an error, rather than run it
// unaudited.
type ReadyChecker interface {
	Ready() error
}

// auditReady reports the sink's readiness, when it can tell.
func (g *Guard) auditReady() error {
	if rc, ok := g.Audit.(ReadyChecker); ok {
		return rc.Ready()
	}
	return nil
}

// RoleResolver is implemented by Authorizers that grant roles beyond the
// credential's own (authz.RBAC's Users map). The pipeline uses it to show a
// caller its roles and to audit them.
type RoleResolver interface {
	Roles(p *Principal) []string
}

func (g *Guard) heldRoles(p *Principal) []string {
	if rr, ok := g.Authorizer.(RoleResolver); ok {
		return rr.Roles(p)
	}
	return p.Roles
}

// AccessDeniedText is the message a caller receives when the authorizer
// refuses it. kind is "Tool", "Resource" or "Prompt".
func AccessDeniedText(kind, target string, d Decision, held []string) string {
	required := "none configured"
	if len(d.RequiredRoles) > 0 {
		required = strings.Join(d.RequiredRoles, " or ")
	}
	yours := "none"
	if len(held) > 0 {
		yours = strings.Join(held, ", ")
	}
	var b strings.Builder
	b.WriteString("ACCESS DENIED\n--------------\n")
	fmt.Fprintf(&b, "%s: %s\n", kind, sanitize(target, 200))
	fmt.Fprintf(&b, "Required role: %s\n", required)
	fmt.Fprintf(&b, "Your role: %s\n", yours)
	if d.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", sanitize(d.Reason, 300))
	}
	if len(d.Policies) > 0 {
		fmt.Fprintf(&b, "Denied by: %s\n", sanitize(strings.Join(d.Policies, ", "), 300))
	}
	b.WriteString("Action: Blocked and logged")
	return b.String()
}

// sanitize bounds s and replaces control characters, for text echoed back
// to a caller.
func sanitize(s string, max int) string { return safetext.Printable(s, max) }

// maxArgValue bounds an allow-listed argument value in an audit record.
const maxArgValue = 256

// summarizeArgs returns the SHA-256 digest of the canonical form of args and
// the allow-listed fields. Canonical form: the arguments decoded and encoded
// again by encoding/json, which sorts object keys. The usual arguments are
// canonicalized by [canonicalize] without that round trip; the others, and
// raw text that is not a JSON object (digested as it is), by encoding/json.
func (g *Guard) summarizeArgs(raw json.RawMessage) (digest string, fields map[string]any) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	s := canonPool.Get().(*canonScratch)
	defer func() {
		if cap(s.out) <= maxKeptCanon && cap(s.tmp) <= maxKeptCanon {
			canonPool.Put(s)
		}
	}()
	if !canonicalize(raw, s) {
		return g.summarizeArgsSlow(raw)
	}
	sum := sha256.Sum256(s.out)
	digest = hexString(sum[:])
	for _, name := range g.ArgumentFields {
		i := slices.IndexFunc(s.members, func(m member) bool { return string(raw[m.keyStart:m.keyEnd]) == name })
		if i < 0 {
			continue
		}
		if fields == nil {
			fields = make(map[string]any, len(g.ArgumentFields))
		}
		m := &s.members[i]
		switch v := s.out[m.start:m.end]; v[0] {
		case '"':
			fields[name] = truncate(string(raw[m.inStart+1:m.inEnd-1]), maxArgValue)
		case 't', 'f':
			fields[name] = v[0] == 't'
		case 'n':
			fields[name] = nil
		case '{', '[':
			fields[name] = truncate(string(v), maxArgValue)
		default:
			f, _ := strconv.ParseFloat(string(v), 64) // canonical, hence valid
			fields[name] = f
		}
	}
	return digest, fields
}

// summarizeArgsSlow is summarizeArgs by way of encoding/json.
func (g *Guard) summarizeArgsSlow(raw json.RawMessage) (digest string, fields map[string]any) {
	var args map[string]any
	canonical := []byte(raw)
	if err := json.Unmarshal(raw, &args); err == nil {
		if b, err := json.Marshal(args); err == nil {
			canonical = b
		}
	}
	sum := sha256.Sum256(canonical)
	digest = hex.EncodeToString(sum[:])
	for _, name := range g.ArgumentFields {
		v, ok := args[name]
		if !ok {
			continue
		}
		if fields == nil {
			fields = make(map[string]any)
		}
		switch v := v.(type) {
		case string:
			fields[name] = truncate(v, maxArgValue)
		case float64, bool, nil:
			fields[name] = v
		default:
			b, _ := json.Marshal(v) // v came from json.Unmarshal
			fields[name] = truncate(string(b), maxArgValue)
		}
	}
	return digest, fields
}

// hexString returns the lowercase hex encoding of b (at most 32 bytes)
// with a single allocation, for the string itself.
func hexString(b []byte) string {
	var buf [64]byte
	return string(hex.AppendEncode(buf[:0], b))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// retrySeconds rounds a retry delay up to whole seconds, at least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// limit runs the Limiter for one message. It returns a non-nil refusal when
// the request must not proceed.
func (g *Guard) limit(ctx context.Context, p *Principal, tool string) (LimitResult, error) {
	if g.Limiter == nil {
		return LimitResult{Allowed: true}, nil
	}
	res, err := g.Limiter.Limit(ctx, p, tool)
	if err != nil {
		return LimitResult{}, fmt.Errorf("rate limiter: %w", err)
	}
	return res, nil
}

func rateLimitedReason(res LimitResult) string {
	return fmt.Sprintf("rate limit exceeded (%s): retry after %ds", res.Scope, retrySeconds(res.RetryAfter))
}

// authFailure completes rec for an Authenticator error and reports whether
// it was an internal failure (the store unreachable, say), which is neither
// the caller's fault nor a strike towards lockout, rather than a refused
// credential.
func authFailure(rec *Record, err error) (internal bool) {
	if !errors.Is(err, ErrInvalidCredentials) {
		rec.Decision, rec.Reason = Failed, "authentication unavailable: "+err.Error()
		return true
	}
	rec.Decision, rec.Reason = AuthFailed, err.Error()
	return false
}
