// Package proxy puts MCP servers that already exist behind an mcp.Server:
// local programs spoken to over stdio, and remote streamable-HTTP servers.
// It is mcpguard's gateway mode.
//
// # How it fits the pipeline
//
// A [Gateway] connects to each configured [Upstream] as an MCP client,
// lists its tools, resources, resource templates and prompts (following
// pagination), and registers each of them on the mcp.Server that mcpguard
// serves, next to the built-in tools. Nothing else is needed for security:
// guard.MCPMiddleware, installed on that server, authenticates, rate-limits,
// authorizes and audits every request before a proxied handler runs, exactly
// as for a built-in tool. The handler then forwards the call to the upstream.
//
// # Use
//
// The gateway needs to configure the server before it exists (go-sdk
// takes subscription and completion handlers only as options), and to be
// started once the server does:
//
//	gw, err := proxy.New(proxy.Options{
//		Upstreams: []proxy.Upstream{{
//			Name: "github", Prefix: "github",
//			Command: []string{"npx", "-y", "@modelcontextprotocol/server-github"},
//			Env:     map[string]string{"GITHUB_PERSONAL_ACCESS_TOKEN": token},
//		}},
//		Pins:  st,   // a store.Store: pinning on
//		Audit: sink, // pinning decisions are audited
//	})
//	opts := &mcp.ServerOptions{}
//	gw.Configure(opts)
//	server := mcp.NewServer(impl, opts)
//	// The guard first, then the gateway's refusal of pinned-out tools.
//	server.AddReceivingMiddleware(g.MCPMiddleware(guard.MCPOptions{Transport: "http"}), gw.Middleware())
//	if err := gw.Start(ctx, server); err != nil { // connects, lists, registers
//		return err // unreachable upstream, or a name collision
//	}
//	defer gw.Close() // stops the upstream processes
//
// # Names
//
// An upstream's tools and prompts are exposed as <prefix><sep><name>, the
// prefix being the upstream's name unless configured otherwise, and the
// separator "__" by default: tool create_issue of upstream github becomes
// github__create_issue, and the permission that lets a caller use it is
// tools:call:github__create_issue (tools:call:github__* grants all of that
// upstream's tools). An upstream with an empty prefix exposes its names
// unchanged. Resources and resource templates keep their URIs (a URI is
// already global), and resources:read:<uri> governs them. Two upstreams (or
// an upstream and a built-in tool) that would expose the same name are an
// error at start; one appearing later (after a list_changed notification)
// is left out and logged.
//
// # What is relayed
//
// Results travel unchanged: text, images, audio, embedded resources,
// resource links, structured content and isError. While a call runs, the
// upstream's progress notifications reach the caller under the caller's own
// progress token; its log messages, sampling requests (sampling/createMessage)
// and elicitation requests (elicitation/create) are sent to the session of the
// call in progress; and a caller's cancellation is passed on upstream as
// notifications/cancelled. When several callers on different sessions have
// calls in progress on one shared upstream connection, a server-to-client
// request cannot be attributed to one of them and is refused rather than
// shown to the wrong person; isolation "per-user" removes the ambiguity
// between users. list_changed notifications from upstreams update the
// registered set, which go-sdk announces to connected clients in turn (for
// a per-user upstream, a change reported by any user's process updates the
// one list every caller sees, through pinning like any other).
//
// Limits: a downstream client on protocol 2026-07-28, where servers no
// longer send requests during a call (multi round-trip results replace
// them), gets no sampling or elicitation relayed; the gateway speaks
// 2025-11-25 to upstreams. Over stdio, log and progress messages an upstream
// sends before a result are relayed before the result; over HTTP, go-sdk
// may hand the last of them over just after it.
//
// # Credentials
//
// The caller's credential never reaches an upstream (the MCP specification
// forbids token passthrough): HTTP upstreams get only the headers configured
// for them, and stdio upstreams get a minimal environment (PATH, HOME, LANG
// and the like) plus the variables configured for them, never mcpguard's own
// environment, which on stdio holds the caller's MCP_API_KEY.
//
// # Isolation, failure and bounds
//
// An upstream with [PerUser] isolation gets one connection (for stdio, one
// process) per principal, so that no state is shared between users; idle
// ones are closed after [Options.IdleTimeout]. A connection that dies is
// re-established on the next use, with exponential backoff between
// failures: callers get a clear error meanwhile, never a hang. Every
// forwarded request is bounded by the upstream's timeout, and every message
// it sends by its maximum response size; a larger message closes the
// connection (it cannot be skipped safely) and fails the call.
//
// # Pinning
//
// With a [PinStore], the first definition seen of each upstream tool (a
// SHA-256 over the canonical JSON of its name, description, input and output
// schemas, see [ToolHash]) is recorded. A later, different definition is
// either blocked (hidden from tools/list and refused on tools/call) or only
// flagged, per the upstream's [PinMode], and audited either way, so that a
// server cannot silently change what a tool claims to do.
package proxy
