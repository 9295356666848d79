package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/policy"
	"github.com/mcpguard/mcpguard/proxy"
	"github.com/mcpguard/mcpguard/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// LiveTools returns the tools mcpguard serves with cfg, with their argument
// schemas: the built-in database tools, and the tools of every configured
// upstream (connected to for the purpose) under their exposed names.
func LiveTools(ctx context.Context, cfg *config.Config, env func(string) (string, bool)) ([]policy.Tool, error) {
	out, err := builtinTools(ctx)
	if err != nil || len(cfg.Upstreams) == 0 {
		return out, err
	}
	st, err := openStoreFor(ctx, cfg, env)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ups, err := gatewayUpstreams(cfg, nil, resolver(ctx, cfg, st, env))
	if err != nil {
		return nil, err
	}
	tools, err := proxy.ListTools(ctx, proxy.Options{Upstreams: ups, Separator: cfg.Gateway.Separator})
	if err != nil {
		return nil, fmt.Errorf("listing the upstreams' tools: %w", err)
	}
	for _, t := range tools {
		schema, err := json.Marshal(t.InputSchema)
		if err != nil {
			return nil, err
		}
		out = append(out, policy.Tool{Name: t.Name, InputSchema: schema})
	}
	return out, nil
}

// builtinTools returns the built-in database tools with their schemas.
func builtinTools(ctx context.Context) ([]policy.Tool, error) {
	server := mcp.NewServer(&mcp.Implementation{Name: "mcpguard", Version: Version}, nil)
	tools.Register(server, nil) // listing only: no handler runs
	ct, st := mcp.NewInMemoryTransports()
	ss, err := server.Connect(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "mcpguard-policy", Version: Version}, nil).Connect(ctx, ct, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	var out []policy.Tool
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		schema, err := json.Marshal(t.InputSchema)
		if err != nil {
			return nil, err
		}
		out = append(out, policy.Tool{Name: t.Name, InputSchema: schema})
	}
	return out, nil
}

// PolicyCheck validates the configuration's roles and the policies of
// policies.dir against the schema of the live tools, printing every
// problem; it fails when there is one.
func PolicyCheck(ctx context.Context, w io.Writer, cfg *config.Config, env func(string) (string, bool)) error {
	set, err := LoadPolicies(cfg, nil)
	if err != nil {
		return err
	}
	live, err := LiveTools(ctx, cfg, env)
	if err != nil {
		return fmt.Errorf("listing the tools: %w", err)
	}
	problems, skipped, err := set.Engine().Check(live)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(w, "note: %s; policies cannot read it\n", s)
	}
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s) in the policies", len(problems))
	}
	fmt.Fprintf(w, "%d policies checked against %d tools: no problems\n", set.Engine().Len(), len(live))
	return nil
}

// PolicySchema prints the Cedar schema of the live tools.
func PolicySchema(ctx context.Context, w io.Writer, cfg *config.Config, env func(string) (string, bool)) error {
	live, err := LiveTools(ctx, cfg, env)
	if err != nil {
		return err
	}
	text, _ := policy.Schema(live)
	_, err = io.WriteString(w, text)
	return err
}

// PolicyShow prints every policy in force, the roles compiled to Cedar
// first.
func PolicyShow(w io.Writer, cfg *config.Config) error {
	set, err := LoadPolicies(cfg, nil)
	if err != nil {
		return err
	}
	for _, p := range set.Engine().Policies() {
		fmt.Fprintln(w, p)
		fmt.Fprintln(w)
	}
	return nil
}

// PolicyTestOptions describe one request for PolicyTest.
type PolicyTestOptions struct {
	Subject, Method, Issuer, ClientID string
	Roles, Groups, Scopes             []string
	// MFAAge is how long ago the principal completed a second factor;
	// negative means never.
	MFAAge time.Duration
	// Action is the MCP method: tools/call, resources/read, prompts/get.
	Action string
	// Resource is the tool name, resource URI or prompt name.
	Resource string
	// Context is a JSON object with any of: arguments (object), ip,
	// time (RFC 3339), transport, protocol_version.
	Context string
	// List asks whether the item would be listed rather than called.
	List bool
	// Expect, "allow" or "deny", makes a different decision an error.
	Expect string
}

// PolicyTest decides one request with the policies in force and prints
// the decision and the policies that determined it.
func PolicyTest(w io.Writer, cfg *config.Config, o PolicyTestOptions) error {
	set, err := LoadPolicies(cfg, nil)
	if err != nil {
		return err
	}
	if o.Resource == "" {
		return errors.New("--resource is required (a tool name, resource URI or prompt name)")
	}
	var c struct {
		Arguments       json.RawMessage `json:"arguments"`
		IP              string          `json:"ip"`
		Time            string          `json:"time"`
		Transport       string          `json:"transport"`
		ProtocolVersion string          `json:"protocol_version"`
	}
	if o.Context != "" {
		d := json.NewDecoder(strings.NewReader(o.Context))
		d.DisallowUnknownFields()
		if err := d.Decode(&c); err != nil {
			return fmt.Errorf("--context: %w (fields: arguments, ip, time, transport, protocol_version)", err)
		}
	}
	info := &guard.RequestInfo{Time: time.Now(), ClientIP: c.IP, Transport: c.Transport, ProtocolVersion: c.ProtocolVersion}
	if info.Transport == "" {
		info.Transport = "http"
	}
	if c.Time != "" {
		if info.Time, err = time.Parse(time.RFC3339, c.Time); err != nil {
			return fmt.Errorf("--context: time: %w", err)
		}
	}
	// Tokens of mcpguard's authorization server are scope-limited: the
	// users: map does not add to their roles, in production or here.
	p := &guard.Principal{Subject: o.Subject, Method: guard.AuthMethod(o.Method), Issuer: o.Issuer, ClientID: o.ClientID,
		Roles: o.Roles, Groups: o.Groups, Scopes: o.Scopes, ScopeLimited: guard.AuthMethod(o.Method) == guard.MethodOAuth}
	if o.MFAAge >= 0 {
		p.MFATime = info.Time.Add(-o.MFAAge)
	}
	a := guard.Action{Method: o.Action, Target: o.Resource, Listing: o.List, Request: info}
	if !o.List {
		a.Arguments = c.Arguments
	}
	eng := set.Engine()
	d := eng.Authorize(context.Background(), p, a)
	verdict := "DENY"
	if d.Allowed {
		verdict = "ALLOW"
	}
	fmt.Fprintf(w, "decision: %s\nreason: %s\n", verdict, d.Reason)
	for _, id := range d.Policies {
		if pos := eng.Position(id); pos != "" {
			fmt.Fprintf(w, "determined by: %s (%s)\n", id, pos)
		} else {
			fmt.Fprintf(w, "determined by: %s\n", id)
		}
	}
	if len(d.RequiredRoles) > 0 {
		fmt.Fprintf(w, "a role that would allow it: %s\n", strings.Join(d.RequiredRoles, " or "))
	}
	if len(d.MissingScopes) > 0 {
		fmt.Fprintf(w, "missing scopes: %s\n", strings.Join(d.MissingScopes, " "))
	}
	if d.MFAMaxAge > 0 {
		fmt.Fprintf(w, "step-up: a second factor within %v would allow it\n", d.MFAMaxAge)
	}
	switch {
	case o.Expect == "":
	case o.Expect != "allow" && o.Expect != "deny":
		return fmt.Errorf("--expect must be allow or deny, not %q", o.Expect)
	case (o.Expect == "allow") != d.Allowed:
		return fmt.Errorf("expected %s, got %s", o.Expect, strings.ToLower(verdict))
	}
	return nil
}
