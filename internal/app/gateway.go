package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/proxy"
	"github.com/mcpguard/mcpguard/store"
)

// gatewayUpstreams converts the configured upstreams, and those given as
// `serve --upstream 'name=cmd args'`, into proxy.Upstreams, resolving their
// env and header references. Errors name the setting, never a value.
func gatewayUpstreams(cfg *config.Config, flags []string, res config.Resolver) ([]proxy.Upstream, error) {
	var out []proxy.Upstream
	for i, uc := range cfg.Upstreams {
		u := proxy.Upstream{
			Name: uc.Name, Prefix: uc.Prefix(), Command: uc.Command, URL: uc.URL,
			Isolation: proxy.Isolation(uc.Isolation), Timeout: uc.Timeout,
			MaxResponseBytes: uc.MaxResponseBytes, Pinning: proxy.PinMode(uc.Pinning),
			MaxConnections: uc.MaxConnections,
		}
		if len(uc.Env) > 0 {
			u.Env = map[string]string{}
			for k, v := range uc.Env {
				if ref := config.SecretRef(v); ref.Valid() {
					b, err := ref.ResolveWith(res)
					if err != nil {
						return nil, fmt.Errorf("upstreams[%d].env.%s: %w", i, k, err)
					}
					v = string(b)
				}
				u.Env[k] = v
			}
		}
		if len(uc.Headers) > 0 {
			u.Headers = map[string]string{}
			for k, ref := range uc.Headers {
				b, err := ref.ResolveWith(res)
				if err != nil {
					return nil, fmt.Errorf("upstreams[%d].headers.%s: %w", i, k, err)
				}
				u.Headers[k] = string(b)
			}
		}
		if len(uc.UserEnv) > 0 || len(uc.UserHeaders) > 0 {
			u.UserCredentials = userCredentials(uc.Name, uc.UserEnv, uc.UserHeaders, res)
		}
		out = append(out, u)
	}
	for _, f := range flags {
		u, err := proxy.ParseCommandFlag(f)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// userNameRE is what a principal's subject must look like to stand for
// {user} in a reference: it must stay one secret or variable name.
var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// userCredentials resolves an upstream's per-user env and header templates
// for the caller in ctx.
func userCredentials(upstream string, env, headers map[string]string, res config.Resolver) func(context.Context) (map[string]string, map[string]string, error) {
	resolve := func(subject string, tpls map[string]string) (map[string]string, error) {
		out := map[string]string{}
		for k, tpl := range tpls {
			ref := config.SecretRef(strings.ReplaceAll(tpl, "{user}", subject))
			v, err := ref.ResolveWith(res)
			if err != nil {
				return nil, fmt.Errorf("your own credential for this upstream (%s) is not available; an administrator must provide it: %v", ref, err)
			}
			out[k] = string(v)
		}
		return out, nil
	}
	return func(ctx context.Context) (map[string]string, map[string]string, error) {
		p := guard.PrincipalFromContext(ctx)
		if p == nil || !userNameRE.MatchString(p.Subject) {
			return nil, nil, fmt.Errorf("upstream %s uses per-user credentials, which need a caller whose name is 1-64 letters, digits, '.', '-' or '_'", upstream)
		}
		e, err := resolve(p.Subject, env)
		if err != nil {
			return nil, nil, err
		}
		h, err := resolve(p.Subject, headers)
		if err != nil {
			return nil, nil, err
		}
		return e, h, nil
	}
}

// newGateway builds the gateway for the configured upstreams, or returns
// nil when there are none.
// Metrics label tools/call by tool name for the built-in tools (reserved)
// and the upstreams' exposed tools.
func newGateway(cfg *config.Config, o ServeOptions, st store.Store, res config.Resolver, audit guard.AuditSink, reserved []string, setKnownTools func([]string), logger *slog.Logger) (*proxy.Gateway, error) {
	ups, err := gatewayUpstreams(cfg, o.Upstreams, res)
	if err != nil || len(ups) == 0 {
		return nil, err
	}
	return proxy.New(proxy.Options{
		Upstreams: ups, Separator: cfg.Gateway.Separator, Reserved: reserved,
		Pins: st, Audit: audit, Logger: logger, IdleTimeout: cfg.Gateway.IdleTimeout,
		ToolsChanged: func(names []string) { setKnownTools(append(slices.Clone(reserved), names...)) },
	})
}

// statusEvery is how often the running server reports upstream health to
// the store; a report older than staleAfter means it stopped.
const (
	statusEvery = 2 * time.Second
	staleAfter  = 5 * statusEvery
)

// reportStatus writes the gateway's upstream health to the store until ctx
// is done, and a final "stopped" report then. `mcpguard upstreams status`
// reads it: the store is where every other command already looks, and it
// needs no credential or listener of its own.
func reportStatus(ctx context.Context, gw *proxy.Gateway, st store.UpstreamStatusStore, logger *slog.Logger) {
	write := func(ctx context.Context, stopped bool) {
		now := time.Now()
		for _, s := range gw.Status() {
			if stopped {
				s.State, s.PIDs, s.Connections = "stopped", nil, 0
			}
			b, _ := json.Marshal(s)
			if err := st.PutUpstreamStatus(ctx, &store.UpstreamStatus{Name: s.Name, Status: b, UpdatedAt: now}); err != nil && ctx.Err() == nil {
				logger.Warn("writing upstream status failed", "err", err)
				return
			}
		}
	}
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		write(ctx, false)
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			write(wctx, true)
			cancel()
			return
		case <-t.C:
		}
	}
}

// UpstreamsStatus prints the last health report of every upstream.
func UpstreamsStatus(ctx context.Context, out io.Writer, storeLoc, format string, now time.Time) error {
	st, err := OpenStore(ctx, storeLoc)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListUpstreamStatus(ctx)
	if err != nil {
		return err
	}
	type row struct {
		proxy.Status
		UpdatedAt time.Time `json:"updated_at"`
		Stale     bool      `json:"stale"`
	}
	var rows []row
	for _, r := range list {
		var s proxy.Status
		if err := json.Unmarshal(r.Status, &s); err != nil {
			return fmt.Errorf("upstream %s: unreadable status: %w", r.Name, err)
		}
		rows = append(rows, row{Status: s, UpdatedAt: r.UpdatedAt, Stale: now.Sub(r.UpdatedAt) > staleAfter && s.State != "stopped"})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(out, "No upstream has reported: configure upstreams and run `mcpguard serve`.")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "UPSTREAM\tKIND\tISOLATION\tSTATE\tPIDS\tRESTARTS\tTOOLS\tBLOCKED\tUPDATED\tLAST ERROR")
	for _, r := range rows {
		state := r.State
		if r.Stale {
			state += " (stale: mcpguard not running?)"
		}
		pids := make([]string, len(r.PIDs))
		for i, p := range r.PIDs {
			pids[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s ago\t%s\n", r.Name, r.Kind, r.Isolation, state,
			strings.Join(pids, ","), r.Restarts, r.Tools, r.Blocked, now.Sub(r.UpdatedAt).Round(time.Second), r.LastError)
	}
	return w.Flush()
}

// ToolsPin connects to the configured upstreams (or those named), and pins
// the current definition of each of their tools: the review step after
// mcpguard blocked a changed tool.
func ToolsPin(ctx context.Context, out io.Writer, cfg *config.Config, env func(string) (string, bool), names []string) error {
	st, err := openStoreFor(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer st.Close()
	ups, err := gatewayUpstreams(cfg, nil, resolver(ctx, cfg, st, env))
	if err != nil {
		return err
	}
	if len(ups) == 0 {
		return errors.New("no upstreams are configured")
	}
	res, err := proxy.Pin(ctx, proxy.Options{Upstreams: ups, Separator: cfg.Gateway.Separator, Pins: st}, names)
	for _, r := range res {
		switch {
		case r.Previous == "":
			fmt.Fprintf(out, "pinned   %s/%s %.16s (new)\n", r.Upstream, r.Tool, r.Hash)
		case r.Previous != r.Hash: // ct:public: digests of public tool definitions
			fmt.Fprintf(out, "re-pinned %s/%s %.16s (was %.16s)\n", r.Upstream, r.Tool, r.Hash, r.Previous)
		default:
			fmt.Fprintf(out, "unchanged %s/%s %.16s\n", r.Upstream, r.Tool, r.Hash)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d tool definitions pinned; restart mcpguard serve (or wait for the upstream's next list_changed) to unblock re-pinned tools\n", len(res))
	return nil
}
