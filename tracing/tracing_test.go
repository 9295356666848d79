package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/mcptest"
)

func newRecorder(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, sr
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func byName(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}

// TestScriptedRequest drives the Observer as the pipeline does for one
// allowed tool call under a parent span.
func TestScriptedRequest(t *testing.T) {
	tp, sr := newRecorder(t)
	tr := New(tp)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	for _, s := range []guard.Stage{guard.StageAuthenticate, guard.StageRateLimit, guard.StageAuthorize, guard.StageExecute, guard.StageAudit} {
		sctx, end := tr.StartStage(ctx, s)
		if got := trace.SpanFromContext(sctx).SpanContext(); got.SpanID() == parent.SpanContext().SpanID() || !got.IsValid() {
			t.Errorf("StartStage(%s) did not put its span in the context", s)
		}
		// A span started inside a stage (a tool's own span) nests under it.
		if s == guard.StageExecute {
			_, inner := tp.Tracer("test").Start(sctx, "tool work")
			inner.End()
		}
		end(time.Millisecond)
	}
	tr.Recorded(ctx, &guard.Record{
		RequestID: "c6c7", Subject: "alice@example.com", AuthMethod: guard.MethodAPIKey, KeyID: "56e857ebcc2ad440",
		Transport: "http", SessionID: "sess", Method: "tools/call", Target: "query", Decision: guard.Allowed,
		Reason: "granted by role viewer", ArgsDigest: "9f1c", Args: map[string]any{"sql": "SELECT 1"},
	}, nil)
	parent.End()

	spans := sr.Ended()
	want := []string{"mcpguard.authenticate", "mcpguard.ratelimit", "mcpguard.authorize", "tool work", "mcpguard.execute", "mcpguard.audit", "request"}
	if got := names(spans); !slices.Equal(got, want) {
		t.Fatalf("spans = %v\nwant    %v", got, want)
	}
	pc := parent.SpanContext()
	execID := byName(spans, "mcpguard.execute")[0].SpanContext().SpanID()
	for _, s := range spans {
		if s.SpanContext().TraceID() != pc.TraceID() {
			t.Errorf("%s is in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), pc.TraceID())
		}
		switch {
		case s.Name() == "tool work":
			if s.Parent().SpanID() != execID {
				t.Errorf("tool work's parent is %s, want the execute span %s", s.Parent().SpanID(), execID)
			}
		case strings.HasPrefix(s.Name(), "mcpguard."):
			if s.Parent().SpanID() != pc.SpanID() {
				t.Errorf("%s's parent is %s, want %s", s.Name(), s.Parent().SpanID(), pc.SpanID())
			}
			if s.SpanKind() != trace.SpanKindInternal {
				t.Errorf("%s has kind %s", s.Name(), s.SpanKind())
			}
		}
	}

	got := attrs(spans[len(spans)-1])
	for k, v := range map[attribute.Key]string{
		AttrDecision: "ALLOWED", AttrMethod: "tools/call", AttrTarget: "query",
		AttrRequestID: "c6c7", AttrAuthMethod: "api_key", AttrTransport: "http",
	} {
		if got[k].AsString() != v {
			t.Errorf("attribute %s = %q, want %q", k, got[k].AsString(), v)
		}
	}
	// Nothing that identifies the caller or carries arguments or free text.
	for k, v := range got {
		s := v.Emit()
		for _, secret := range []string{"alice", "56e857ebcc2ad440", "sess", "SELECT", "9f1c", "granted"} {
			if strings.Contains(s, secret) {
				t.Errorf("attribute %s = %q leaks %q", k, s, secret)
			}
		}
	}
	if st := spans[len(spans)-1].Status(); st.Code != codes.Unset {
		t.Errorf("status of an allowed request = %v", st)
	}
}

func TestRecordedErrors(t *testing.T) {
	tp, sr := newRecorder(t)
	tr := New(tp)
	tracer := tp.Tracer("test")

	ctx, span := tracer.Start(context.Background(), "audit failed")
	tr.Recorded(ctx, &guard.Record{Method: "tools/call", Target: "q", Decision: guard.Allowed}, errors.New("disk full"))
	span.End()
	ctx, span = tracer.Start(context.Background(), "internal")
	tr.Recorded(ctx, &guard.Record{Method: "tools/list", Decision: guard.Failed, Reason: "rate limiter: store down"}, nil)
	span.End()
	ctx, span = tracer.Start(context.Background(), "denied")
	tr.Recorded(ctx, &guard.Record{Method: "tools/call", Target: strings.Repeat("é", 200), Decision: guard.Denied}, nil)
	span.End()

	spans := sr.Ended()
	if st := spans[0].Status(); st.Code != codes.Error || st.Description != "audit write failed" {
		t.Errorf("audit failure status = %+v", st)
	}
	if !attrs(spans[0])[AttrAuditError].AsBool() {
		t.Error("audit failure not flagged")
	}
	if st := spans[1].Status(); st.Code != codes.Error {
		t.Errorf("ERROR decision status = %+v", st)
	}
	if st := spans[2].Status(); st.Code != codes.Unset {
		t.Errorf("a denial is not an error: status = %+v", st)
	}
	target := attrs(spans[2])[AttrTarget].AsString()
	if len(target) > maxAttrLen || !strings.HasPrefix(target, "éé") || strings.ContainsRune(target, '\uFFFD') {
		t.Errorf("target not truncated cleanly: %d bytes %q", len(target), target)
	}
}

func TestNoSpanNoPanic(t *testing.T) {
	tr := New(nil)
	ctx, end := tr.StartStage(context.Background(), guard.StageAuthorize)
	end(0)
	tr.Recorded(ctx, &guard.Record{Decision: guard.Allowed}, nil)
	tr.Recorded(context.Background(), nil, errors.New("x"))

	// A recording provider but no span in ctx: Recorded does nothing.
	tp, sr := newRecorder(t)
	New(tp).Recorded(context.Background(), &guard.Record{Decision: guard.Allowed}, nil)
	if n := len(sr.Ended()) + len(sr.Started()); n != 0 {
		t.Errorf("Recorded without a span made %d spans", n)
	}
}

func TestUnknownStage(t *testing.T) {
	tp, sr := newRecorder(t)
	_, end := New(tp).StartStage(context.Background(), guard.Stage("custom"))
	end(0)
	s := sr.Ended()[0]
	if s.Name() != SpanOtherStage || attrs(s)[AttrStage].AsString() != "custom" {
		t.Errorf("unknown stage span = %s %v", s.Name(), s.Attributes())
	}
}

// Unit-test pipeline parts.
type keyAuth map[string]*guard.Principal

func (k keyAuth) Authenticate(_ context.Context, c guard.Credential) (*guard.Principal, error) {
	if p, ok := k[c.Secret]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: unknown", guard.ErrInvalidCredentials)
}

type onlyQuery struct{}

func (onlyQuery) Authorize(_ context.Context, _ *guard.Principal, a guard.Action) guard.Decision {
	if a.Method == "tools/call" && a.Target == "query" {
		return guard.Decision{Allowed: true, Reason: "query is open"}
	}
	return guard.Decision{Reason: "only query is open"}
}

type nopSink struct{}

func (nopSink) Record(context.Context, *guard.Record) error { return nil }

// TestGuardOverMCP runs the real guard pipeline over an in-memory MCP
// connection (as on stdio) with the Tracer as its Observer and
// MCPMiddleware outside it.
func TestGuardOverMCP(t *testing.T) {
	tp, sr := newRecorder(t)
	tr := New(tp)
	g := &guard.Guard{
		Authenticator: keyAuth{"k": {Subject: "alice", Issuer: "mcpguard", Method: guard.MethodAPIKey, KeyID: "abc"}},
		Authorizer:    onlyQuery{},
		Audit:         nopSink{},
		Observer:      tr,
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	s.AddReceivingMiddleware(tr.MCPMiddleware(), g.MCPMiddleware(guard.MCPOptions{Transport: "stdio", Credential: &guard.Credential{Kind: guard.Bearer, Secret: "k"}}))
	for _, name := range []string{"query", "drop_table"} {
		mcp.AddTool(s, &mcp.Tool{Name: name}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ran"}}}, nil, nil
		})
	}
	ctx := context.Background()
	cs := mcptest.ConnectInMemory(t, s)

	sr.Reset()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	checkRequest(t, sr.Ended(), "ALLOWED", "query",
		[]string{"mcpguard.authenticate", "mcpguard.ratelimit", "mcpguard.authorize", "mcpguard.execute", "mcpguard.audit"})

	sr.Reset()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "drop_table", Arguments: map[string]any{}})
	if err != nil || !res.IsError {
		t.Fatalf("drop_table: %v, %+v", err, res)
	}
	checkRequest(t, sr.Ended(), "DENIED", "drop_table",
		[]string{"mcpguard.authenticate", "mcpguard.ratelimit", "mcpguard.authorize", "mcpguard.audit"})
}

// checkRequest asserts that spans are one SpanMCP root with the stage spans
// as its children, and the record's attributes on the root.
func checkRequest(t *testing.T, spans []sdktrace.ReadOnlySpan, decision, target string, stages []string) {
	t.Helper()
	roots := byName(spans, SpanMCP)
	if len(roots) != 1 {
		t.Fatalf("%d %s spans in %v", len(roots), SpanMCP, names(spans))
	}
	root := roots[0]
	if root.Parent().IsValid() || root.SpanKind() != trace.SpanKindServer {
		t.Errorf("MCP span: parent %v, kind %s; want a server root", root.Parent(), root.SpanKind())
	}
	var children []string
	for _, s := range spans {
		if s.Parent().SpanID() == root.SpanContext().SpanID() {
			children = append(children, s.Name())
		}
	}
	if !slices.Equal(children, stages) {
		t.Errorf("children of the MCP span = %v\nwant                        %v", children, stages)
	}
	a := attrs(root)
	if a[AttrDecision].AsString() != decision || a[AttrTarget].AsString() != target ||
		a[AttrMethod].AsString() != "tools/call" || a[AttrTransport].AsString() != "stdio" ||
		a[AttrAuthMethod].AsString() != "api_key" || len(a[AttrRequestID].AsString()) == 0 {
		t.Errorf("MCP span attributes = %v", root.Attributes())
	}
}

func TestMCPMiddlewareError(t *testing.T) {
	tp, sr := newRecorder(t)
	tr := New(tp)
	h := tr.MCPMiddleware()(func(context.Context, string, mcp.Request) (mcp.Result, error) {
		return nil, &jsonrpc.Error{Code: guard.CodeForbidden, Message: "no"}
	})
	parentCtx, parent := tp.Tracer("test").Start(context.Background(), "http")
	if _, err := h(parentCtx, "tools/call", nil); err == nil {
		t.Fatal("error lost")
	}
	parent.End()
	s := byName(sr.Ended(), SpanMCP)[0]
	if s.Status().Code != codes.Error || attrs(s)[AttrJSONRPCErrorCode].AsInt64() != guard.CodeForbidden {
		t.Errorf("status %+v, attributes %v", s.Status(), s.Attributes())
	}
	if s.SpanKind() != trace.SpanKindInternal || s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("MCP span under an HTTP span: kind %s, parent %s", s.SpanKind(), s.Parent().SpanID())
	}
}

func TestHTTPMiddleware(t *testing.T) {
	tp, sr := newRecorder(t)
	tr := New(tp)
	var inner trace.SpanContext
	h := tr.HTTPMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner = trace.SpanContextFromContext(r.Context())
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the wrapped writer is not an http.Flusher")
		}
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	const remoteTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	req.Header.Set("Traceparent", "00-"+remoteTrace+"-00f067aa0ba902b7-01")
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req)

	if rw.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d", rw.Code)
	}
	s := byName(sr.Ended(), SpanHTTP)[0]
	if inner.SpanID() != s.SpanContext().SpanID() {
		t.Error("the handler does not run in the HTTP span")
	}
	if s.Parent().IsValid() || s.SpanContext().TraceID().String() == remoteTrace {
		t.Error("a client's traceparent was adopted as parent")
	}
	if len(s.Links()) != 1 || s.Links()[0].SpanContext.TraceID().String() != remoteTrace {
		t.Errorf("links = %v, want the client's span", s.Links())
	}
	a := attrs(s)
	if a[AttrHTTPMethod].AsString() != "POST" || a["http.response.status_code"].AsInt64() != 429 || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("HTTP span: kind %s, attributes %v", s.SpanKind(), s.Attributes())
	}
}

func TestNewProvider(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := NewProvider(exp)
	_, end := New(tp).StartStage(context.Background(), guard.StageAuthorize)
	end(0)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	if err := tp.ForceFlush(context.Background()); err != nil { // Shutdown would reset exp
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "mcpguard.authorize" {
		t.Fatalf("exported %v", spans)
	}
	var service string
	for _, kv := range spans[0].Resource.Attributes() {
		if kv.Key == "service.name" {
			service = kv.Value.AsString()
		}
	}
	if want := "mcpguard"; service != want {
		if env := strings.TrimSpace(os.Getenv("OTEL_SERVICE_NAME")); env == "" {
			t.Errorf("service.name = %q, want %q", service, want)
		}
	}
}

func BenchmarkStartStage(b *testing.B) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	tr := New(tp)
	ctx, parent := tp.Tracer("bench").Start(context.Background(), "parent")
	defer parent.End()
	b.Run("recording", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_, end := tr.StartStage(ctx, guard.StageAuthorize)
			end(time.Microsecond)
			if i%1024 == 0 {
				sr.Reset() // keep the recorder's memory flat
			}
		}
	})
	b.Run("noop", func(b *testing.B) {
		tr := New(nil)
		b.ReportAllocs()
		for b.Loop() {
			_, end := tr.StartStage(ctx, guard.StageAuthorize)
			end(time.Microsecond)
		}
	})
}

// BenchmarkRecorded measures a span that a record annotates against one
// that it does not: the difference is Recorded's cost.
func BenchmarkRecorded(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	tr := New(tp)
	tracer := tp.Tracer("bench")
	r := &guard.Record{RequestID: "c6c7", AuthMethod: guard.MethodAPIKey, Transport: "http", Method: "tools/call", Target: "query", Decision: guard.Allowed}
	for _, record := range []bool{false, true} {
		b.Run(fmt.Sprint("recorded=", record), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := tracer.Start(context.Background(), "request")
				if record {
					tr.Recorded(ctx, r, nil)
				}
				span.End()
			}
		})
	}
}
