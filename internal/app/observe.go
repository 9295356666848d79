package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/metrics"
	"github.com/mcpguard/mcpguard/tracing"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// observability holds the metrics and, when enabled, the tracer.
type observability struct {
	metrics  *metrics.Metrics
	tracer   *tracing.Tracer
	provider *sdktrace.TracerProvider
	out      io.Closer
}

func newObservability(cfg *config.Config, logger *slog.Logger) (*observability, error) {
	o := &observability{metrics: metrics.New(metrics.Options{})}
	if !cfg.Tracing.Enabled {
		return o, nil
	}
	var w io.Writer = os.Stderr
	if cfg.Tracing.File != "-" {
		f, err := os.OpenFile(cfg.Tracing.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("tracing.file: %w", err)
		}
		w, o.out = f, f
	}
	exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	o.provider = tracing.NewProvider(exp)
	o.tracer = tracing.New(o.provider)
	return o, nil
}

// observer is what the Guard reports to.
func (o *observability) observer() guard.Observer {
	if o.tracer == nil {
		return o.metrics
	}
	return guard.Observers{o.metrics, o.tracer}
}

// mcpMiddleware opens a span per MCP message, outside the guard.
func (o *observability) mcpMiddleware() []mcp.Middleware {
	if o.tracer == nil {
		return nil
	}
	return []mcp.Middleware{o.tracer.MCPMiddleware()}
}

// httpMiddleware opens a span per HTTP request, outside the guard.
func (o *observability) httpMiddleware(h http.Handler) http.Handler {
	if o.tracer == nil {
		return h
	}
	return o.tracer.HTTPMiddleware(h)
}

func (o *observability) close() {
	if o.provider != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		o.provider.Shutdown(ctx)
	}
	if o.out != nil {
		o.out.Close()
	}
}

// anyRole allows principals holding one of roles, with inheritance.
func anyRole(rbac *authz.RBAC, roles []string) func(*guard.Principal) bool {
	return func(p *guard.Principal) bool {
		return slices.ContainsFunc(roles, func(r string) bool { return rbac.HasRole(p, r) })
	}
}

// serveMetrics serves h at /metrics on its own listener, for an internal
// scrape network; stop shuts it down.
func serveMetrics(addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}
