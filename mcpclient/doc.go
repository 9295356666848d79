// Package mcpclient connects to a remote MCP server that is protected by
// OAuth 2.1, the way the MCP authorization specification describes, and keeps
// the resulting login on disk so that several processes can share it.
//
// It is the library behind `mcpguard login` and `mcpguard connect`, and it is
// usable on its own:
//
//	store, _ := mcpclient.OpenStore("", nil) // ~/.config/mcpguard/tokens
//	h, _ := mcpclient.NewHandler(mcpclient.Config{ServerURL: url, Store: store, Interactive: true})
//	transport := &mcp.StreamableClientTransport{Endpoint: url, OAuthHandler: h}
//	session, err := mcp.NewClient(impl, nil).Connect(ctx, transport, nil)
//
// or, for plain HTTP code, as an [http.RoundTripper]:
//
//	client := &http.Client{Transport: h.RoundTripper(nil)}
//
// # What happens on a 401
//
// The discovery, registration and authorization-code steps are those of the
// go-sdk's [auth.AuthorizationCodeHandler], which this package configures and
// wraps: Protected Resource Metadata (RFC 9728) from the WWW-Authenticate
// challenge's resource_metadata or the well-known paths, authorization server
// metadata (RFC 8414, then OpenID discovery, then the 2025-03-26 fallback
// endpoints), a client identity (a Client ID Metadata Document URL, a
// pre-registered client, or Dynamic Client Registration, in that order of
// preference as the server allows), PKCE S256, the RFC 8707 resource
// parameter, a single-use random state, and the RFC 9207 iss check.
//
// What this package adds:
//
//   - A loopback redirect listener on 127.0.0.1 (RFC 8252 §7.3) that accepts
//     exactly one redirect carrying the expected state, and a browser opener
//     ($BROWSER, else xdg-open/open, else the URL is printed).
//   - A [Store]: one file per server under the user's configuration
//     directory, mode 0600 in a 0700 directory, optionally sealed with
//     AES-256-GCM, guarded by an advisory file lock (flock) so that
//     concurrent processes run one login and one refresh between them and
//     never overwrite a rotated refresh token with a stale one.
//   - Refresh before expiry (see [Config.RefreshMargin]), and a clear
//     [ErrLoginRequired] when the refresh token is refused and no
//     interactive login is allowed.
//   - Step-up: on 403 insufficient_scope the scopes already granted (kept in
//     the store) are requested again together with the challenged ones.
//
// A handler runs the authorization at most [MaxAuthorizations] times for one
// set of scopes, so a server that keeps refusing new tokens cannot loop it.
//
// Interactive sign-in is opt-in ([Config.Interactive]): `mcpguard connect`,
// usually started in the background by an MCP client, fails with
// [ErrLoginRequired] and a message naming the `mcpguard login` command to
// run, unless started with --login. Tests and headless setups complete the
// browser step by pointing $BROWSER at a program that follows the
// authorization URL (test/e2e's scripted browser submits mcpguard's forms,
// or follows the conformance suite's auto-approving server).
package mcpclient
