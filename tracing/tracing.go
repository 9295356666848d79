// Package tracing traces mcpguard's pipeline with OpenTelemetry.
//
// A [Tracer] is a [guard.Observer]: every pipeline stage becomes a span
// named "mcpguard.<stage>" (mcpguard.authenticate, mcpguard.ratelimit,
// mcpguard.authorize, mcpguard.audit, mcpguard.execute), a child of the span
// in the stage's context, and every audit record annotates that span with
// its decision, method, target and request id. Records never put secrets,
// arguments, reasons or the caller's identity in a span.
//
// The pipeline calls its stages with the request's context, so the stage
// spans of one request share a parent only when the context carries one.
// [Tracer.HTTPMiddleware] and [Tracer.MCPMiddleware] start that parent, per
// HTTP request and per MCP message.
//
// Tracing is off unless a program installs a Tracer; [NewProvider] builds an
// SDK TracerProvider for an exporter.
package tracing

import (
	"context"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mcpguard/mcpguard/guard"
)

// ScopeName is the instrumentation scope of mcpguard's spans.
const ScopeName = "github.com/mcpguard/mcpguard/tracing"

// Span names.
const (
	// SpanHTTP is the span HTTPMiddleware starts for each HTTP request.
	SpanHTTP = "mcpguard.http"
	// SpanMCP is the span MCPMiddleware starts for each MCP message.
	SpanMCP = "mcpguard.mcp"
	// SpanOtherStage names the span of a stage this package does not know.
	SpanOtherStage = "mcpguard.stage"
)

// Attribute keys set on spans.
const (
	// AttrDecision is the audit record's decision: ALLOWED, DENIED, …
	AttrDecision = attribute.Key("mcpguard.decision")
	// AttrMethod is the MCP method, per the OpenTelemetry MCP conventions.
	AttrMethod = attribute.Key("mcp.method.name")
	// AttrTarget is the tool name, resource URI or prompt name, truncated.
	AttrTarget = attribute.Key("mcpguard.target")
	// AttrRequestID is the audit record's request id, which joins a trace
	// to the audit log.
	AttrRequestID = attribute.Key("mcpguard.request_id")
	// AttrAuthMethod is how the caller authenticated: api_key or jwt.
	AttrAuthMethod = attribute.Key("mcpguard.auth_method")
	// AttrTransport is the transport the request came by: http or stdio.
	AttrTransport = attribute.Key("mcpguard.transport")
	// AttrToolError is true when a tool ran and reported an error.
	AttrToolError = attribute.Key("mcpguard.tool_error")
	// AttrAuditError is true when the audit sink failed to write the record.
	AttrAuditError = attribute.Key("mcpguard.audit_error")
	// AttrStage names the stage of a span named SpanOtherStage.
	AttrStage = attribute.Key("mcpguard.stage")
	// AttrHTTPMethod is the HTTP request method (GET, POST, DELETE or _OTHER).
	AttrHTTPMethod = attribute.Key("http.request.method")
	// AttrJSONRPCErrorCode is the JSON-RPC error code a message was answered
	// with.
	AttrJSONRPCErrorCode = attribute.Key("rpc.jsonrpc.error_code")
)

// maxAttrLen bounds the length of attribute values that come from requests.
const maxAttrLen = 128

var stageSpanNames = map[guard.Stage]string{
	guard.StageAuthenticate: "mcpguard." + string(guard.StageAuthenticate),
	guard.StageRateLimit:    "mcpguard." + string(guard.StageRateLimit),
	guard.StageAuthorize:    "mcpguard." + string(guard.StageAuthorize),
	guard.StageExecute:      "mcpguard." + string(guard.StageExecute),
	guard.StageAudit:        "mcpguard." + string(guard.StageAudit),
}

// Tracer is an OpenTelemetry [guard.Observer]. Its methods are safe for
// concurrent use.
type Tracer struct {
	tracer trace.Tracer
	off    bool // New(nil): trace nothing, at no cost
}

var _ guard.Observer = (*Tracer)(nil)

// New returns a Tracer whose spans go to tp; a nil tp traces nothing.
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return &Tracer{tracer: noop.NewTracerProvider().Tracer(ScopeName), off: true}
	}
	return &Tracer{tracer: tp.Tracer(ScopeName)}
}

// StartStage implements [guard.Observer]: it starts the stage's span, a
// child of the span in ctx, and returns ctx with that span; the returned
// function ends it.
func (t *Tracer) StartStage(ctx context.Context, s guard.Stage) (context.Context, func(time.Duration)) {
	if t.off {
		return ctx, endNothing
	}
	var span trace.Span
	if name, ok := stageSpanNames[s]; ok {
		ctx, span = t.tracer.Start(ctx, name)
	} else {
		ctx, span = t.tracer.Start(ctx, SpanOtherStage,
			trace.WithAttributes(AttrStage.String(truncate(string(s)))))
	}
	return ctx, func(time.Duration) { span.End() }
}

func endNothing(time.Duration) {}

// Recorded implements [guard.Observer]: it sets the record's decision,
// method, target, request id, authentication method and transport as
// attributes of the span in ctx, when it records. When a message yields
// several records (a batch), the last one's attributes win. An audit write
// failure, or an ERROR decision, sets the span's status to Error.
func (t *Tracer) Recorded(ctx context.Context, r *guard.Record, err error) {
	span := trace.SpanFromContext(ctx)
	if r == nil || !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, AttrDecision.String(string(r.Decision)))
	if r.Method != "" {
		attrs = append(attrs, AttrMethod.String(truncate(r.Method)))
	}
	if r.Target != "" {
		attrs = append(attrs, AttrTarget.String(truncate(r.Target)))
	}
	if r.RequestID != "" {
		attrs = append(attrs, AttrRequestID.String(truncate(r.RequestID)))
	}
	if r.AuthMethod != "" {
		attrs = append(attrs, AttrAuthMethod.String(truncate(string(r.AuthMethod))))
	}
	if r.Transport != "" {
		attrs = append(attrs, AttrTransport.String(truncate(r.Transport)))
	}
	if r.ToolError {
		attrs = append(attrs, AttrToolError.Bool(true))
	}
	if err != nil {
		attrs = append(attrs, AttrAuditError.Bool(true))
	}
	span.SetAttributes(attrs...)
	switch {
	case err != nil:
		span.SetStatus(codes.Error, "audit write failed")
	case r.Decision == guard.Failed:
		span.SetStatus(codes.Error, "internal failure")
	}
}

// MCPMiddleware returns go-sdk receiving middleware that starts a span named
// SpanMCP for every MCP message, so that the stages of one message share a
// parent. Add it outside the guard's middleware (a later
// AddReceivingMiddleware call, or earlier in the same call). The span is a
// server span when ctx has no span (stdio), else an internal one.
func (t *Tracer) MCPMiddleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			kind := trace.SpanKindInternal
			if !trace.SpanContextFromContext(ctx).IsValid() {
				kind = trace.SpanKindServer
			}
			ctx, span := t.tracer.Start(ctx, SpanMCP, trace.WithSpanKind(kind),
				trace.WithAttributes(AttrMethod.String(truncate(method))))
			defer span.End()
			res, err := next(ctx, method, req)
			if err != nil {
				if werr, ok := errors.AsType[*jsonrpc.Error](err); ok {
					span.SetAttributes(AttrJSONRPCErrorCode.Int64(werr.Code))
				}
				span.SetStatus(codes.Error, "")
			}
			return res, err
		}
	}
}

// HTTPMiddleware wraps next so that every HTTP request runs in a server span
// named SpanHTTP. Install it outside the guard's HTTP middleware.
//
// The span always starts a new trace: a W3C traceparent sent by the client
// is recorded as a link, never adopted as parent, so that an
// unauthenticated client can neither join a trace of its choosing nor force
// sampling.
func (t *Tracer) HTTPMiddleware(next http.Handler) http.Handler {
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts := []trace.SpanStartOption{
			trace.WithNewRoot(),
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(AttrHTTPMethod.String(httpMethod(r.Method))),
		}
		if remote := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.HeaderCarrier(r.Header))); remote.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: remote}))
		}
		ctx, span := t.tracer.Start(r.Context(), SpanHTTP, opts...)
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		if sw.status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
			if sw.status >= 500 {
				span.SetStatus(codes.Error, "")
			}
		}
	})
}

// statusWriter remembers the response status.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush,
// deadlines), which streamable HTTP needs.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher, for handlers that assert it directly.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush() // best effort, as http.Flusher
}

func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodOptions, http.MethodHead:
		return m
	}
	return "_OTHER"
}

// NewProvider returns an SDK TracerProvider that batches spans to exporter
// (nil: none, for a provider given its processors in opts), with the
// default parent-based, always-on sampler and a resource naming the service
// "mcpguard" (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it).
// opts come last and override. Call its Shutdown when the program stops, to
// flush the last spans.
func NewProvider(exporter sdktrace.SpanExporter, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	res, err := resource.New(context.Background(),
		resource.WithAttributes(attribute.String("service.name", "mcpguard")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // last, so that the environment wins
	)
	if err != nil && res == nil { // a partial resource comes with an error too
		res = resource.Default()
	}
	all := make([]sdktrace.TracerProviderOption, 0, 2+len(opts))
	all = append(all, sdktrace.WithResource(res))
	if exporter != nil {
		all = append(all, sdktrace.WithBatcher(exporter))
	}
	all = append(all, opts...)
	return sdktrace.NewTracerProvider(all...)
}

// truncate bounds s to maxAttrLen bytes without splitting a UTF-8 sequence.
func truncate(s string) string {
	if len(s) <= maxAttrLen {
		return s
	}
	i := maxAttrLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
