package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/internal/safehttp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// MaxAuthorizations is how many times a [Handler] runs the authorization
// flow for the same set of scopes before it gives up: a server that answers
// every new token with another 401 or the same 403 insufficient_scope must
// not keep a browser window opening.
const MaxAuthorizations = 3

// DefaultRefreshMargin is how long before its expiry an access token is
// refreshed.
const DefaultRefreshMargin = 60 * time.Second

// ErrLoginRequired is matched (errors.Is) by the error returned when there
// is no usable stored login and the handler may not start one.
var ErrLoginRequired = errors.New("login required")

// LoginRequiredError says why a login is needed and how to do it.
type LoginRequiredError struct {
	// Server is the MCP server URL.
	Server string
	// Reason is a short explanation, without secrets.
	Reason string
	// Scopes, for a step-up, are the scopes the login must add.
	Scopes []string
	// First is set when there has never been a login for the server.
	First bool
}

// Error says why and names the command that fixes it.
func (e *LoginRequiredError) Error() string {
	cmd := "mcpguard login " + e.Server
	for _, s := range e.Scopes {
		cmd += " --scope " + s
	}
	if e.First {
		return fmt.Sprintf("%s: run `%s` first", e.Reason, cmd)
	}
	return fmt.Sprintf("%s: run `%s` again", e.Reason, cmd)
}

// Is reports whether target is [ErrLoginRequired].
func (e *LoginRequiredError) Is(target error) bool { return target == ErrLoginRequired }

// Config configures a [Handler].
type Config struct {
	// ServerURL is the MCP endpoint, e.g. https://host/mcp. Required.
	ServerURL string
	// Store keeps the login. Required.
	Store *Store

	// ClientID (and ClientSecret for a confidential client) identify a
	// client registered in advance with the authorization server.
	ClientID     string
	ClientSecret string
	// ClientMetadataURL is an https URL of a Client ID Metadata Document
	// (used as the client_id when the server supports CIMD). Its
	// redirect_uris must allow http://127.0.0.1/callback on any port.
	ClientMetadataURL string
	// ClientName is the name given at Dynamic Client Registration, which is
	// used when neither of the above applies. Default "mcpguard".
	ClientName string
	// Scopes are requested in addition to those the server asks for.
	Scopes []string

	// Interactive allows the handler to run the browser login when there is
	// no usable login (missing, refused, or a step-up is needed). Without
	// it such requests fail with [ErrLoginRequired].
	Interactive bool
	// RedirectPort fixes the loopback redirect listener's port (for a
	// client registered with one exact redirect URI); 0 picks a free one.
	RedirectPort int
	// OpenBrowser shows the authorization URL to the user. Default
	// [OpenBrowser]. The URL is also printed to Log.
	OpenBrowser func(ctx context.Context, authURL string) error
	// LoginTimeout bounds the wait for the browser redirect. Default 5m.
	LoginTimeout time.Duration

	// HTTPClient makes the discovery, registration and token requests.
	// Default: a client with a 30s timeout.
	HTTPClient *http.Client
	// RefreshMargin: an access token this close to its expiry is refreshed
	// before use. Default [DefaultRefreshMargin].
	RefreshMargin time.Duration
	// Log receives progress messages for the user (never secrets).
	// Default os.Stderr.
	Log io.Writer
}

// Handler is a go-sdk [auth.OAuthHandler] whose tokens live in a [Store]:
// set it as mcp.StreamableClientTransport.OAuthHandler, or wrap an
// http.RoundTripper with [Handler.RoundTripper]. It is safe for concurrent
// use, and several processes may each have one for the same server.
type Handler struct {
	cfg Config

	mu       sync.Mutex
	cached   *Record        // the last record read or written
	attempts map[string]int // authorizations run, by requested scope set
	refusal  string         // why the last refresh failed, for the login error
}

var _ auth.OAuthHandler = (*Handler)(nil)

// NewHandler checks cfg and returns a handler.
func NewHandler(cfg Config) (*Handler, error) {
	u, err := url.Parse(cfg.ServerURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q must be an absolute http(s) URL", cfg.ServerURL)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("server URL %q: tokens are only sent over https (or http to localhost)", cfg.ServerURL)
	}
	if cfg.Store == nil {
		return nil, errors.New("mcpclient: Config.Store is required")
	}
	if cfg.ClientSecret != "" && cfg.ClientID == "" {
		return nil, errors.New("a client secret needs a client ID")
	}
	if cfg.ClientMetadataURL != "" {
		if m, err := url.Parse(cfg.ClientMetadataURL); err != nil || m.Scheme != "https" || m.Path == "" || m.Path == "/" {
			return nil, fmt.Errorf("client metadata URL %q must be an https URL with a path", cfg.ClientMetadataURL)
		}
	}
	if cfg.RedirectPort < 0 || cfg.RedirectPort > 65535 {
		return nil, fmt.Errorf("redirect port %d out of range", cfg.RedirectPort)
	}
	cfg.ClientName = cmpOr(cfg.ClientName, "mcpguard")
	if cfg.OpenBrowser == nil {
		cfg.OpenBrowser = OpenBrowser
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = 5 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.RefreshMargin <= 0 {
		cfg.RefreshMargin = DefaultRefreshMargin
	}
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	return &Handler{cfg: cfg, attempts: map[string]int{}}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fresh reports whether r's access token can be used without a refresh.
func (h *Handler) fresh(r *Record) bool {
	return r != nil && r.AccessToken != "" && (r.Expiry.IsZero() || time.Until(r.Expiry) > h.cfg.RefreshMargin)
}

func (h *Handler) remember(r *Record) {
	h.mu.Lock()
	h.cached = r
	h.mu.Unlock()
}

// Stored returns the stored login for the server, or nil when there is none.
func (h *Handler) Stored() (*Record, error) { return h.cfg.Store.Load(h.cfg.ServerURL) }

// TokenSource implements [auth.OAuthHandler]. It returns nil (send no
// token) when nothing is stored yet, so the server's 401 starts
// [Handler.Authorize].
func (h *Handler) TokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	h.mu.Lock()
	cached := h.cached
	h.mu.Unlock()
	if cached == nil {
		rec, err := h.cfg.Store.Load(h.cfg.ServerURL)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return nil, nil
		}
		h.remember(rec)
	}
	return tokenSourceFunc(h.token), nil
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// errNoGrant is what the token source returns when it has no usable grant:
// an invalid_grant RetrieveError, which the go-sdk transport treats as "send
// the request without a token", so that the 401 reaches Authorize.
func errNoGrant(why string) error {
	return &oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: why}
}

// Token returns a usable access token, refreshing it (under the store's
// lock, so once among all processes) when it is about to expire.
func (h *Handler) Token() (*oauth2.Token, error) { return h.token() }

func (h *Handler) token() (*oauth2.Token, error) {
	h.mu.Lock()
	rec := h.cached
	h.mu.Unlock()
	if h.fresh(rec) {
		return rec.token(), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	unlock, err := h.cfg.Store.Lock(ctx, h.cfg.ServerURL)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err = h.cfg.Store.Load(h.cfg.ServerURL)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errNoGrant("no stored login")
	}
	h.remember(rec)
	if h.fresh(rec) { // another process refreshed it
		return rec.token(), nil
	}
	rec, err = h.refreshLocked(ctx, rec)
	if err != nil {
		return nil, err
	}
	return rec.token(), nil
}

// refreshLocked uses rec's refresh token and returns and stores a new
// record with the new tokens (records, once read, are not changed: other
// goroutines may be reading them). The caller holds the store's lock. A
// refused refresh token is reported as an invalid_grant
// [oauth2.RetrieveError].
func (h *Handler) refreshLocked(ctx context.Context, old *Record) (*Record, error) {
	if old.RefreshToken == "" {
		h.setRefusal("the access token expired and the server issued no refresh token")
		return nil, errNoGrant("no refresh token")
	}
	rec := *old
	ctx = context.WithValue(ctx, oauth2.HTTPClient, h.cfg.HTTPClient)
	expired := rec.token()
	expired.Expiry = time.Now().Add(-time.Hour) // force the refresh
	tok, err := rec.oauthConfig().TokenSource(ctx, expired).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client") {
			h.setRefusal("the authorization server refused the stored refresh token (" + re.ErrorCode + ")")
			return nil, errNoGrant("refresh token refused")
		}
		return nil, fmt.Errorf("refreshing the access token for %s: %w", h.cfg.ServerURL, err)
	}
	rec.AccessToken, rec.TokenType, rec.Expiry = tok.AccessToken, tok.TokenType, tok.Expiry
	if tok.RefreshToken != "" {
		rec.RefreshToken = tok.RefreshToken
	}
	if err := h.cfg.Store.Save(&rec); err != nil {
		return nil, err
	}
	h.remember(&rec)
	return &rec, nil
}

func (h *Handler) setRefusal(s string) {
	h.mu.Lock()
	h.refusal = s
	h.mu.Unlock()
}

// Authorize implements [auth.OAuthHandler]: the go-sdk transport calls it
// with a request that got 401 or 403. Under the store's lock it first
// checks whether another process has meanwhile stored a newer token, then
// tries a refresh (for a 401), and only then runs the browser login, when
// the handler is interactive. A nil return means "retry the request".
func (h *Handler) Authorize(ctx context.Context, req *http.Request, resp *http.Response) error {
	closeBody := func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	challenges, _ := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	stepUp := resp.StatusCode == http.StatusForbidden
	if stepUp && bearerParam(challenges, "error") != "insufficient_scope" {
		closeBody() // a plain 403: nothing a token can change
		return nil
	}
	unlock, err := h.cfg.Store.Lock(ctx, h.cfg.ServerURL)
	if err != nil {
		closeBody()
		return err
	}
	defer unlock()
	rec, err := h.cfg.Store.Load(h.cfg.ServerURL)
	if err != nil {
		closeBody()
		return err
	}
	sent := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	if rec != nil && rec.AccessToken != sent && h.fresh(rec) && (!stepUp || hasScopes(rec.Scopes, bearerParam(challenges, "scope"))) {
		h.remember(rec) // another process logged in or refreshed meanwhile
		closeBody()
		return nil
	}
	if !stepUp && rec != nil && rec.RefreshToken != "" && (rec.AccessToken == sent || !h.fresh(rec)) {
		// The access token was refused (revoked, or the server lost its
		// keys): a refresh may be all that is needed.
		if _, err := h.refreshLocked(ctx, rec); err == nil {
			closeBody()
			return nil
		}
	}
	if !h.cfg.Interactive {
		closeBody()
		return h.loginRequired(rec, stepUp, bearerParam(challenges, "scope"))
	}
	return h.authorizeLocked(ctx, req, resp, rec)
}

func (h *Handler) loginRequired(rec *Record, stepUp bool, scope string) error {
	h.mu.Lock()
	reason := h.refusal
	h.mu.Unlock()
	var add []string
	switch {
	case stepUp:
		reason = "the server needs more scope than the stored login has"
		for _, sc := range strings.Fields(scope) {
			if validScope(sc) && (rec == nil || !slices.Contains(rec.Scopes, sc)) && len(add) < 10 {
				add = append(add, sc)
			}
		}
	case rec == nil:
		reason = "not logged in to " + h.cfg.ServerURL
	case reason == "":
		reason = "the server refused the stored login"
	}
	return &LoginRequiredError{Server: h.cfg.ServerURL, Reason: reason, Scopes: add, First: rec == nil && !stepUp}
}

// validScope reports whether s is a short RFC 6749 scope-token (printable
// ASCII without space, '"' or '\\'), so that it can be quoted in a message.
func validScope(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' || r == '`' {
			return false
		}
	}
	return true
}

// authorizeLocked runs the go-sdk's authorization code flow with a loopback
// redirect, and stores the tokens. The caller holds the store's lock.
func (h *Handler) authorizeLocked(ctx context.Context, req *http.Request, resp *http.Response, rec *Record) error {
	var previous []string
	if rec != nil {
		previous = rec.Scopes
	}
	lb, err := listenLoopback(h.cfg.RedirectPort)
	if err != nil {
		resp.Body.Close()
		return err
	}
	defer lb.close()

	var got *Record
	var requested []string
	cfg := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL: lb.url,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			return h.browserStep(ctx, lb, args.URL)
		},
		ScopeFilter: func(discovered []string) []string {
			requested = unionScopes(previous, discovered, h.cfg.Scopes)
			return requested
		},
		RequestRefreshToken: true,
		Client:              h.discoveryClient(ctx),
		NewTokenSource: func(_ context.Context, c *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			got = &Record{
				Server: h.cfg.ServerURL, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
				TokenURL: c.Endpoint.TokenURL, AuthStyle: c.Endpoint.AuthStyle, Scopes: c.Scopes,
				AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType, Expiry: tok.Expiry,
			}
			return oauth2.StaticTokenSource(tok), nil
		},
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{lb.url},
			ClientName:              h.cfg.ClientName,
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			TokenEndpointAuthMethod: "none",
		}},
	}
	if h.cfg.ClientMetadataURL != "" {
		cfg.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: h.cfg.ClientMetadataURL}
	}
	if h.cfg.ClientID != "" {
		cfg.PreregisteredClient = &oauthex.ClientCredentials{ClientID: h.cfg.ClientID}
		if h.cfg.ClientSecret != "" {
			cfg.PreregisteredClient.ClientSecretAuth = &oauthex.ClientSecretAuth{ClientSecret: h.cfg.ClientSecret}
		}
	}
	inner, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		resp.Body.Close()
		return fmt.Errorf("configuring the authorization flow: %w", err)
	}
	key := scopeKey(unionScopes(previous, h.cfg.Scopes, strings.Fields(scopeOf(resp))))
	h.mu.Lock()
	h.attempts[key]++
	n := h.attempts[key]
	h.mu.Unlock()
	if n > MaxAuthorizations {
		resp.Body.Close()
		return fmt.Errorf("gave up after %d authorizations for %s: the server keeps refusing the new tokens", MaxAuthorizations, h.cfg.ServerURL)
	}
	if err := inner.Authorize(ctx, req, resp); err != nil {
		return fmt.Errorf("authorizing with %s: %w", h.cfg.ServerURL, err)
	}
	if got == nil {
		return errors.New("the authorization flow ended without tokens")
	}
	if len(got.Scopes) == 0 {
		got.Scopes = requested
	}
	if err := h.cfg.Store.Save(got); err != nil {
		return err
	}
	h.remember(got)
	h.setRefusal("")
	fmt.Fprintf(h.cfg.Log, "mcpguard: signed in to %s; the login is stored in %s\n", h.cfg.ServerURL, h.cfg.Store.Path(h.cfg.ServerURL))
	return nil
}

// browserStep shows authURL to the user and waits for the redirect.
func (h *Handler) browserStep(ctx context.Context, lb *loopback, authURL string) (*auth.AuthorizationResult, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("authorization URL: %w", err)
	}
	// Only a web page is handed to the browser opener: https, or http on
	// this machine (go-sdk checks the same of the endpoint it was given).
	if !(u.Scheme == "https" || u.Scheme == "http" && isLoopbackName(u.Hostname())) || u.Host == "" {
		return nil, fmt.Errorf("refusing to open the authorization URL: it must be https (or http on this machine), not %q", u.Scheme)
	}
	state := u.Query().Get("state")
	if state == "" {
		return nil, errors.New("the authorization URL has no state")
	}
	lb.expect(state)
	ctx, cancel := context.WithTimeout(ctx, h.cfg.LoginTimeout)
	defer cancel()
	fmt.Fprintf(h.cfg.Log, "mcpguard: sign in to %s in your browser. If it does not open, visit:\n\n  %s\n\n", u.Host, authURL)
	if err := h.cfg.OpenBrowser(ctx, authURL); err != nil {
		fmt.Fprintf(h.cfg.Log, "mcpguard: could not open a browser (%v); open the URL above yourself\n", err)
	}
	return lb.wait(ctx)
}

func scopeOf(resp *http.Response) string {
	cs, _ := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	return bearerParam(cs, "scope")
}

// bearerParam returns a parameter of the Bearer challenge.
func bearerParam(cs []oauthex.Challenge, name string) string {
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, "bearer") {
			return c.Params[name]
		}
	}
	return ""
}

// hasScopes reports whether have includes every scope in the
// space-separated want.
func hasScopes(have []string, want string) bool {
	for _, s := range strings.Fields(want) {
		if !slices.Contains(have, s) {
			return false
		}
	}
	return true
}

// unionScopes returns the scopes of all lists, each once, in first-seen
// order; nil when there are none (so no scope parameter is sent).
func unionScopes(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func scopeKey(scopes []string) string {
	s := slices.Clone(scopes)
	slices.Sort(s)
	return strings.Join(s, " ")
}

// printable bounds s and replaces control characters, for messages that
// quote what a server sent.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// isNoGrant reports whether err is the token source's "no usable grant".
func isNoGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// discoveryClient returns the HTTP client for one authorization: the
// configured one, with [legacyTransport] for 2025-03-26 servers.
//
// Without a configured transport, discovery may reach only public
// addresses (what go-sdk's own discovery client enforces, and which its
// check cannot see through the legacy wrapper), unless the MCP server is
// itself on a loopback or private address: a malicious server must not
// make this machine fetch, or register at, internal URLs.
func (h *Handler) discoveryClient(ctx context.Context) *http.Client {
	c := *h.cfg.HTTPClient
	u, _ := url.Parse(h.cfg.ServerURL)
	base := c.Transport
	if base == nil {
		base = safehttp.NewTransport(safehttp.Options{AllowPrivate: nonPublicHost(ctx, u.Hostname()), Timeout: 30 * time.Second, MaxBodyBytes: 1 << 20})
	}
	c.Transport = &legacyTransport{base: base, origin: origin(u)}
	return &c
}

// isLoopbackName reports whether host names this machine.
func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// nonPublicHost reports whether host is, or resolves to, a loopback,
// private or otherwise non-public address.
func nonPublicHost(ctx context.Context, host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return !safehttp.IsPublic(ip)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	return err == nil && slices.ContainsFunc(addrs, func(a netip.Addr) bool { return !safehttp.IsPublic(a) })
}
