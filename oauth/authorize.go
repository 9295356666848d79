package oauth

import (
	"cmp"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safetext"
)

// Authorization request bounds.
const (
	txnTTL         = 10 * time.Minute
	maxQueryBytes  = 8 << 10
	maxState       = 512
	maxScopeParam  = 2048
	maxScopes      = 50
	maxResourceLen = 2048
)

// Cookie names (without the __Host- prefix SecureCookies adds).
const (
	cookieTxn     = "mcpguard_oauth_txn"
	cookieSession = "mcpguard_oauth_session"
)

// txn is a sign-in in progress, sealed into the transaction cookie: the
// validated authorization request, and how far the person has got.
type txn struct {
	// ID names the transaction (MFA attempts are counted under it).
	ID           string   `json:"id"`
	ClientID     string   `json:"cid"`
	ClientName   string   `json:"cn"`
	RedirectURI  string   `json:"ru"`
	State        string   `json:"st,omitempty"`
	Challenge    string   `json:"cc"`
	Resource     string   `json:"res"`
	Scopes       []string `json:"sc"`
	LoopbackCIMD bool     `json:"lb,omitempty"` // a metadata-document client whose redirects are all loopback
	ForceConsent bool     `json:"pc,omitempty"` // prompt=consent
	CSRF         string   `json:"csrf"`
	// User, once the password was accepted (or a login session stood in
	// for it), with when it was entered; MFATime once MFA was passed.
	User     string `json:"u,omitempty"`
	Binding  string `json:"b,omitempty"`
	AuthTime int64  `json:"at,omitempty"`
	MFATime  int64  `json:"mt,omitempty"`
	// MFAFails counts wrong codes (also counted in memory, since an older
	// copy of this cookie could be replayed).
	MFAFails int `json:"mf,omitempty"`
	// Expires is when the transaction ends (Unix seconds): ten minutes
	// after the authorization request, and again after the password.
	Expires int64 `json:"exp"`
}

func (s *Server) cookieName(base string) string {
	if s.cfg.SecureCookies {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(base), Value: value, Path: "/", MaxAge: max(int(maxAge.Seconds()), 1),
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(base), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
}

var (
	// challengeRE is BASE64URL(SHA-256(verifier)) without padding, as
	// S256 makes it (43 characters), with room for longer ones.
	challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43,128}$`)
	// verifierRE is RFC 7636 §4.1: 43 to 128 unreserved characters.
	verifierRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
)

// authzParams are the parameters an authorization request may carry once.
var authzParams = []string{
	"response_type", "client_id", "redirect_uri", "state", "scope", "resource",
	"code_challenge", "code_challenge_method", "prompt", "response_mode", "request", "request_uri",
}

// authorize validates an authorization request and starts the sign-in.
// Until the client and its redirect URI are known good, errors are shown
// on a page and never redirected: mcpguard must not be usable as an open
// redirector.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > maxQueryBytes {
		s.audit(r, "oauth/authorize", "", "", guard.Denied, "authorization request too large")
		s.errorPage(w, http.StatusRequestURITooLong, "The authorization request is too large.")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "The authorization request is malformed.")
		return
	}
	for _, name := range authzParams {
		if len(q[name]) > 1 {
			s.audit(r, "oauth/authorize", "", safetext.Printable(q.Get("client_id"), 200), guard.Denied, "repeated parameter "+name)
			s.errorPage(w, http.StatusBadRequest, "The authorization request repeats the "+name+" parameter.")
			return
		}
	}
	cl, err := s.lookupClient(r.Context(), q.Get("client_id"))
	if err != nil {
		s.audit(r, "oauth/authorize", "", safetext.Printable(q.Get("client_id"), 200), guard.Denied, "invalid_client: "+err.Error())
		s.errorPage(w, http.StatusBadRequest, "This application could not be identified: "+err.Error()+".")
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" {
		s.audit(r, "oauth/authorize", "", cl.ID, guard.Denied, "redirect_uri missing")
		s.errorPage(w, http.StatusBadRequest, "The authorization request has no redirect_uri.")
		return
	}
	if !redirectAllowed(cl.RedirectURIs, redirect) {
		s.audit(r, "oauth/authorize", "", cl.ID, guard.Denied, "redirect_uri not registered for the client")
		s.errorPage(w, http.StatusBadRequest, "The redirect URI is not registered for this application.")
		return
	}
	// From here on the redirect URI is trusted: errors go back to it.
	state := q.Get("state")
	fail := func(code, description string) {
		s.audit(r, "oauth/authorize", "", cl.ID, guard.Denied, code+": "+description)
		if cl.Dynamic || cl.metadataDocument {
			// Anyone can register a client, or publish a metadata
			// document, naming any redirect URI. Redirecting an error there
			// before the person has done anything would make mcpguard an
			// open redirector (RFC 9700 §4.11.2), so the error is shown.
			s.errorPage(w, http.StatusBadRequest, "The application sent an invalid sign-in request ("+code+": "+description+"). Go back to the application.")
			return
		}
		redirectError(w, r, redirect, state, s.cfg.Issuer, code, description)
	}
	if len(state) > maxState {
		state = "" // not echoed: the client would not recognize a cut one
		fail("invalid_request", fmt.Sprintf("state may be at most %d bytes", maxState))
		return
	}
	switch rt := q.Get("response_type"); {
	case q.Get("request") != "" || q.Get("request_uri") != "":
		fail("request_not_supported", "request objects are not supported")
		return
	case rt == "":
		fail("invalid_request", "response_type is required")
		return
	case rt != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case q.Get("response_mode") != "" && q.Get("response_mode") != "query":
		fail("invalid_request", "only response_mode=query is supported")
		return
	case q.Get("code_challenge") == "":
		fail("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "only S256 is supported as code_challenge_method")
		return
	case !challengeRE.MatchString(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge must be 43 to 128 base64url characters")
		return
	case !slices.Contains(cl.GrantTypes, "authorization_code"):
		fail("unauthorized_client", "the client may not use the authorization code grant")
		return
	}
	resource := q.Get("resource")
	switch {
	case resource == "":
		fail("invalid_target", "the resource parameter is required (RFC 8707)")
		return
	case len(resource) > maxResourceLen || !slices.Contains(s.cfg.Resources, resource):
		fail("invalid_target", "this server does not issue tokens for that resource")
		return
	}
	scopes, err := s.requestedScopes(q.Get("scope"), cl.Scopes)
	if err != nil {
		fail("invalid_scope", err.Error())
		return
	}
	prompt := strings.Fields(q.Get("prompt"))
	t := &txn{
		ID: randomHex(16), ClientID: cl.ID, ClientName: cmp.Or(cl.Name, cl.ID), RedirectURI: redirect, State: state,
		Challenge: q.Get("code_challenge"), Resource: resource, Scopes: scopes, CSRF: randomToken(32),
		LoopbackCIMD: cl.metadataDocument && allLoopback(cl.RedirectURIs),
		ForceConsent: slices.Contains(prompt, "consent"), Expires: s.now().Add(txnTTL).Unix(),
	}
	if slices.Contains(prompt, "none") {
		// No page may be shown; the person's state is not looked at
		// either (silent authentication is not offered).
		fail("login_required", "interactive sign-in is required")
		return
	}
	// A person already signed in goes straight on, unless the client asks
	// for a fresh sign-in.
	if !slices.Contains(prompt, "login") && s.resumeSession(w, r, t) {
		return
	}
	s.showLogin(w, t, "")
}

// requestedScopes parses a scope parameter: every scope must exist and,
// when the client's registration bounds its scopes, be among them. None
// means the default scopes.
func (s *Server) requestedScopes(raw string, bound []string) ([]string, error) {
	if len(raw) > maxScopeParam {
		return nil, errors.New("the scope parameter is too long")
	}
	names := strings.Fields(raw)
	if len(names) == 0 {
		names = s.cfg.DefaultScopes
	}
	if len(names) == 0 {
		return nil, errors.New("no scope was requested and there is no default")
	}
	if len(names) > maxScopes {
		return nil, errors.New("too many scopes")
	}
	var out []string
	for _, n := range names {
		if _, ok := s.scopes[n]; !ok {
			return nil, fmt.Errorf("unknown scope %q", safetext.Printable(n, 64))
		}
		if len(bound) > 0 && !slices.Contains(bound, n) {
			return nil, fmt.Errorf("the client may not request scope %q", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// grantable narrows requested scopes to those whose role held grants.
func (s *Server) grantable(held []string, mfa bool, requested []string) []string {
	var out []string
	for _, name := range requested {
		if name == ScopeMFA {
			// Granted to a person with a second factor, who passed it
			// during this authorization (see resumeSession).
			if mfa {
				out = append(out, name)
			}
			continue
		}
		if sc, ok := s.scopes[name]; ok && s.cfg.HasRole(held, sc.Role) {
			out = append(out, name)
		}
	}
	return out
}

// rolesOf returns the roles the scopes grant, deduplicated, in the order of
// Config.Scopes.
func (s *Server) rolesOf(scopes []string) []string {
	roles := []string{}
	for _, sc := range s.cfg.Scopes {
		if slices.Contains(scopes, sc.Name) && !slices.Contains(roles, sc.Role) {
			roles = append(roles, sc.Role)
		}
	}
	return roles
}

// redirectError sends an error to the client's validated redirect URI,
// with state and iss (RFC 9207).
func redirectError(w http.ResponseWriter, r *http.Request, redirect, state, issuer, code, description string) {
	v := url.Values{"error": {code}, "error_description": {description}, "iss": {issuer}}
	if state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirect, v), http.StatusSeeOther)
}

// withQuery adds v to base's query, keeping the query it has.
func withQuery(base string, v url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + v.Encode()
}

// CheckRedirectURI reports why raw cannot be a client's redirect URI, or
// nil: https URLs are accepted, and http ones on a loopback host; never a
// fragment, credentials, or a URL over 1024 bytes. `mcpguard clients add`
// applies it too, so that a pre-registered client obeys the same rule as a
// registered one.
func CheckRedirectURI(raw string) error {
	if len(raw) > maxRedirectURI {
		return fmt.Errorf("redirect URIs may be at most %d bytes", maxRedirectURI)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" || strings.Contains(raw, "#") || u.User != nil {
		return errors.New("redirect URIs must be absolute URLs without a fragment or credentials")
	}
	if u.Scheme == "https" || (u.Scheme == "http" && netx.IsLoopbackHost(u.Hostname())) {
		return nil
	}
	return errors.New("redirect URIs must use https (http only on a loopback host: 127.0.0.1, [::1] or localhost)")
}

// redirectAllowed reports whether requested may be used with a client
// whose registered redirect URIs are registered: an exact match, or (OAuth
// 2.1 §8.4.2, RFC 8252 §7.3) a registered http URI on a loopback IP literal
// with only the port differing.
func redirectAllowed(registered []string, requested string) bool {
	if CheckRedirectURI(requested) != nil {
		return false
	}
	if slices.Contains(registered, requested) {
		return true
	}
	req, err := url.Parse(requested)
	if err != nil || req.Scheme != "http" || !isLoopbackIP(req.Hostname()) {
		return false
	}
	for _, reg := range registered {
		u, err := url.Parse(reg)
		if err != nil || u.Scheme != "http" || u.Hostname() != req.Hostname() || !isLoopbackIP(u.Hostname()) {
			continue
		}
		if u.EscapedPath() == req.EscapedPath() && u.RawQuery == req.RawQuery && u.User == nil && !strings.Contains(reg, "#") {
			return true
		}
	}
	return false
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func allLoopback(uris []string) bool {
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil || !netx.IsLoopbackHost(u.Hostname()) {
			return false
		}
	}
	return len(uris) > 0
}
