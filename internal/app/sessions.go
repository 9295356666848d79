package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/internal/tick"
	"github.com/mcpguard/mcpguard/session"
	"github.com/mcpguard/mcpguard/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpHandler is the MCP endpoint's handler before the guard: requests of
// the sessionless revision (MCP-Protocol-Version 2026-07-28 or later) go
// to a stateless go-sdk handler, all others (initialize without the
// header, 2025 revisions) to the session-based one. It also configures g's
// session binding, policy and stream cap, and purges ended sessions until
// ctx ends.
func mcpHandler(ctx context.Context, cfg *config.Config, st store.Store, g *guard.Guard, server *mcp.Server, logger *slog.Logger) (http.Handler, error) {
	reg, err := session.New(st, session.Policy{
		TTL: cfg.Server.SessionTTL, Idle: cfg.Server.SessionTimeout, MaxPerPrincipal: cfg.Server.MaxSessionsPerPrincipal,
	}, nil)
	if err != nil {
		return nil, err
	}
	g.HTTP.Sessions = reg
	g.HTTP.MaxStreamsPerPrincipal = cfg.Server.MaxStreamsPerPrincipal
	go purgeSessions(ctx, st, logger)
	go g.SweepSessions(ctx, sessionSweepInterval)
	getServer := func(*http.Request) *mcp.Server { return server }
	stateful := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Logger:              logger,
		SessionTimeout:      cfg.Server.SessionTimeout,
		MaxRequestBodyBytes: cfg.Server.MaxBodyBytes,
	})
	stateless := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Logger:              logger,
		Stateless:           true,
		MaxRequestBodyBytes: cfg.Server.MaxBodyBytes,
		// In the sessionless revision the POST is the whole request: a
		// client that gives up closes it, and the handler (and any
		// upstream call) is cancelled with it.
		PropagateRequestCancellation: true,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Mcp-Protocol-Version"); v >= guard.SessionlessVersion {
			stateless.ServeHTTP(w, r)
			return
		}
		if sid := r.Header.Get("Mcp-Session-Id"); sid != "" && guard.SessionHeldElsewhere(r.Context()) {
			continueSession(w, r, sid, stateless)
			return
		}
		stateful.ServeHTTP(w, r)
	}), nil
}

// continueSession serves a request of a 2025-revision session that another
// replica opened (the guard has checked that it is live and the caller's).
// The go-sdk keeps a session's protocol state in the process that opened
// it, so here each POST runs on a temporary session initialized with the
// request's protocol version, which is all a request/response exchange
// needs. What needs the original process stays there: server-to-client
// requests (sampling, elicitation) fail here, the standalone SSE stream
// (GET) is refused with 405 as the specification allows, and a
// logging/setLevel applies to the request alone. DELETE ends the session
// in the registry (the guard records it), and the replica holding it
// closes its copy at its next sweep.
func continueSession(w http.ResponseWriter, r *http.Request, sid string, stateless http.Handler) {
	switch r.Method {
	case http.MethodPost:
		w.Header().Set("Mcp-Session-Id", sid)
		stateless.ServeHTTP(w, r)
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "POST, DELETE")
		http.Error(w, "this replica serves the session's requests but not its standalone stream; send POST requests", http.StatusMethodNotAllowed)
	}
}

// sessionSweepInterval is how often the sessions this process serves are
// checked against the registry, so that a revoked one's open streams end.
const sessionSweepInterval = 2 * time.Second

// purgeSessions deletes sessions that ended more than a day ago, hourly.
func purgeSessions(ctx context.Context, st store.SessionStore, logger *slog.Logger) {
	tick.Now(ctx, time.Hour, func() {
		if n, err := st.PurgeSessions(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			logger.Warn("sessions: purging ended sessions failed", "err", err)
		} else if n > 0 {
			logger.Info("sessions: purged ended sessions", "rows", n)
		}
	})
}

// SessionsList writes the live MCP sessions (of user, when not "").
func SessionsList(ctx context.Context, out io.Writer, storeLoc, user string) error {
	s, err := OpenStore(ctx, storeLoc)
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := s.ListSessions(ctx, user, time.Now())
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "No live sessions.")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCLIENT\tCREATED\tLAST SEEN\tEXPIRES")
	for _, x := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, printable(x.Subject), printable(orDash(x.ClientID)),
			x.CreatedAt.Local().Format(time.DateTime), x.LastSeen.Local().Format(time.DateTime), x.ExpiresAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// SessionsRevoke ends one session (id) or every session of user; the
// next request presenting it gets 404.
func SessionsRevoke(ctx context.Context, out io.Writer, storeLoc, user, id string) error {
	s, err := OpenStore(ctx, storeLoc)
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now()
	if id != "" {
		if err := s.RevokeSession(ctx, id, now); err != nil {
			return err
		}
		fmt.Fprintf(out, "Session %s revoked.\n", id)
		return nil
	}
	n, err := s.RevokeSessions(ctx, user, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Revoked %d session(s) of %s.\n", n, printable(user))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
