// Package admin serves mcpguard's read-only admin page: recent decisions and
// recent denials from the audit records in the store, behind a sign-in with
// an API key or JWT held by an allowed role.
//
// The handler serves paths under /admin/ and is mounted there as is (no
// http.StripPrefix):
//
//	h, err := admin.New(admin.Options{Store: st, Authenticator: authn, SessionKey: key})
//	mux.Handle("/admin/", h)
//
// Security properties:
//
//   - The credential is used once, at sign-in, and never stored: the session
//     cookie holds an AES-256-GCM sealed record of the subject, the roles
//     that grant access, the expiry and a CSRF token. It is HttpOnly,
//     SameSite=Strict, and with Options.Secure also Secure and __Host-
//     prefixed.
//   - Each request re-checks the session's API key (revoked, expired,
//     deleted) or JWT id (revoked) in the store.
//   - Every form (sign-in, sign-out) is checked twice against cross-site
//     requests: Sec-Fetch-Site/Origin/Referer must name this host, and a
//     CSRF token must match (a signed double-submit cookie for sign-in, the
//     session's token for sign-out).
//   - Failed sign-ins are throttled per source and answered with one
//     generic message.
//   - Pages are html/template (contextual auto-escaping), with a strict
//     Content-Security-Policy (no scripts at all), X-Frame-Options DENY and
//     Cache-Control no-store.
package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/secrets"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/netx"
	"github.com/mcpguard/mcpguard/store"
)

// Defaults and bounds.
const (
	// DefaultSessionTTL is how long a sign-in lasts by default.
	DefaultSessionTTL = 8 * time.Hour
	// MaxSessionTTL bounds Options.SessionTTL.
	MaxSessionTTL = 24 * time.Hour
	// SessionKeySize is the required length of Options.SessionKey.
	SessionKeySize = 32
	// RecentLimit is the number of records each section of the page shows.
	RecentLimit = 100
	// MaxCredentialBytes bounds the credential pasted into the sign-in form.
	MaxCredentialBytes = 8 << 10
	// MaxFilterBytes bounds the user and tool filters.
	MaxFilterBytes = 200

	basePath     = "/admin/"
	loginPath    = "/admin/login"
	logoutPath   = "/admin/logout"
	stylePath    = "/admin/static/style.css"
	maxFormBytes = 16 << 10
	maxCellRunes = 200
	timeLayout   = "2006-01-02 15:04:05"
)

// contentSecurityPolicy allows the page's own stylesheet and nothing else:
// no script, no frame, no form target but this origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configure the admin handler.
type Options struct {
	// Store holds the audit records shown, and the API keys and revoked
	// token ids each request re-checks. Required.
	Store store.Store
	// Authenticator verifies the credential pasted at sign-in (an API key
	// or a JWT, as over HTTP with Authorization: Bearer). Required.
	Authenticator guard.Authenticator
	// Authorizer, when it implements guard.RoleResolver (as *authz.RBAC
	// does), supplies the roles a principal holds, including roles the
	// policy grants its subject. Otherwise the credential's roles are used.
	Authorizer guard.Authorizer
	// AllowedRoles are the roles that may use the page; holding any one
	// suffices. Empty means ["admin"].
	AllowedRoles []string
	// Inherits maps a role to the roles it inherits (as authz.Role's
	// Inherits), so that a role inheriting an allowed role is allowed too.
	// Nil means no inheritance.
	Inherits map[string][]string
	// Secure marks the page as served over TLS: cookies get the Secure
	// attribute and the __Host- prefix (which requires Path=/), and form
	// origins must be https.
	Secure bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// SessionKey seals session cookies (AES-256-GCM) and signs CSRF tokens.
	// It must be SessionKeySize random bytes; sessions do not survive a
	// change of key. Required.
	SessionKey secrets.Value
	// SessionTTL is how long a sign-in lasts, at most until the credential
	// expires. Zero means DefaultSessionTTL; at most MaxSessionTTL.
	SessionTTL time.Duration
	// Lockout throttles sources that fail to sign in. Nil means an
	// in-memory limit: 5 failures within 15 minutes lock a source out for
	// 15 minutes.
	Lockout guard.Lockout
	// Audit, when set, records every sign-in attempt (method
	// "admin/login"). A successful sign-in that cannot be audited is
	// refused.
	Audit guard.AuditSink
	// Logger receives operational errors (never credentials). Nil discards
	// them.
	Logger *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// Handler is the admin page's http.Handler.
type Handler struct {
	opts          Options
	seal          *sealer
	tmpl          *template.Template
	mux           *http.ServeMux
	sessionCookie string
	csrfCookie    string
	cookiePath    string
	lockout       guard.Lockout
	logger        *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New returns the admin handler for opts, or an error when a required
// option is missing or out of range.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("admin: Options.Store is required")
	case opts.Authenticator == nil:
		return nil, errors.New("admin: Options.Authenticator is required")
	case len(opts.SessionKey) != SessionKeySize:
		return nil, fmt.Errorf("admin: Options.SessionKey must be %d bytes, got %d", SessionKeySize, len(opts.SessionKey))
	case !slices.ContainsFunc(opts.SessionKey, func(b byte) bool { return b != 0 }):
		return nil, errors.New("admin: Options.SessionKey is all zero bytes: use random bytes")
	case opts.SessionTTL < 0 || opts.SessionTTL > MaxSessionTTL:
		return nil, fmt.Errorf("admin: Options.SessionTTL %v out of range (0, %v]", opts.SessionTTL, MaxSessionTTL)
	}
	opts.SessionKey = slices.Clone(opts.SessionKey)
	if opts.SessionTTL == 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if len(opts.AllowedRoles) == 0 {
		opts.AllowedRoles = []string{"admin"}
	}
	if slices.Contains(opts.AllowedRoles, "") {
		return nil, errors.New("admin: Options.AllowedRoles contains an empty role")
	}
	opts.AllowedRoles = slices.Clone(opts.AllowedRoles)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, lockout: opts.Lockout, logger: opts.Logger}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.lockout == nil {
		h.lockout = newLoginLimiter(opts.Now)
	}
	if opts.Secure {
		// __Host- cookies must be Secure, have Path=/ and no Domain.
		h.sessionCookie, h.csrfCookie, h.cookiePath = "__Host-mcpguard_admin", "__Host-mcpguard_admin_csrf", "/"
	} else {
		h.sessionCookie, h.csrfCookie, h.cookiePath = "mcpguard_admin", "mcpguard_admin_csrf", basePath
	}
	var err error
	if h.seal, err = newSealer(opts.SessionKey, h.sessionCookie); err != nil {
		return nil, err
	}
	h.tmpl, err = template.New("").Funcs(template.FuncMap{
		"lower": strings.ToLower,
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("admin: parse templates: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+basePath+"{$}", h.dashboard)
	mux.HandleFunc("GET "+loginPath, h.loginForm)
	mux.HandleFunc("POST "+loginPath, h.login)
	mux.HandleFunc("POST "+logoutPath, h.logout)
	mux.HandleFunc("GET "+stylePath, h.style)
	mux.HandleFunc(basePath, func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, http.StatusNotFound, "Not found", "There is no admin page at this address.")
	})
	h.mux = mux
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	guard.SecurityHeaders(hdr)
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	// same-origin rather than no-referrer: with no-referrer, browsers send
	// "Origin: null" on form posts, which the origin check must refuse.
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// style serves the stylesheet.
func (h *Handler) style(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Write(styleCSS)
}

// --- sessions ---------------------------------------------------------------

// sessionState is what a request's session cookie amounts to.
type sessionState int

const (
	noSession   sessionState = iota // absent, tampered, expired or revoked
	authorized                      // valid and holding an allowed role
	forbidden                       // valid, but without an allowed role
	unavailable                     // the store could not be asked
)

// currentSession reads and checks the request's session.
func (h *Handler) currentSession(ctx context.Context, r *http.Request) (*session, sessionState) {
	c, err := r.Cookie(h.sessionCookie)
	if err != nil {
		return nil, noSession
	}
	s, err := h.seal.open(c.Value, h.opts.Now())
	if err != nil {
		return nil, noSession
	}
	if ok, err := h.credentialStillValid(ctx, s); err != nil {
		h.logger.ErrorContext(ctx, "admin: session check failed", "err", err)
		return nil, unavailable
	} else if !ok {
		return nil, noSession
	}
	if !h.allowed(s.Roles) {
		return s, forbidden
	}
	return s, authorized
}

// credentialStillValid re-checks the credential a session was opened with.
func (h *Handler) credentialStillValid(ctx context.Context, s *session) (bool, error) {
	if s.KeyID != "" {
		k, err := h.opts.Store.GetAPIKey(ctx, s.KeyID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if k.Revoked() || k.Expired(h.opts.Now()) {
			return false, nil
		}
	}
	if s.TokenID != "" {
		revoked, err := h.opts.Store.TokenRevoked(ctx, s.TokenID)
		if err != nil {
			return false, err
		}
		if revoked {
			return false, nil
		}
	}
	return true, nil
}

// heldRoles are the roles p holds before inheritance.
func (h *Handler) heldRoles(p *guard.Principal) []string {
	if rr, ok := h.opts.Authorizer.(guard.RoleResolver); ok {
		return rr.Roles(p)
	}
	return p.Roles
}

// grantingRoles returns the roles of held that are, or inherit, an allowed
// role.
func (h *Handler) grantingRoles(held []string) []string {
	var out []string
	for _, role := range held {
		if !slices.Contains(out, role) && h.grants(role) {
			out = append(out, role)
		}
	}
	return out
}

// allowed reports whether any of held grants access.
func (h *Handler) allowed(held []string) bool {
	return slices.ContainsFunc(held, h.grants)
}

// grants reports whether role is, or inherits (transitively), an allowed
// role.
func (h *Handler) grants(role string) bool {
	seen := map[string]bool{}
	queue := []string{role}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if seen[r] {
			continue
		}
		seen[r] = true
		if slices.Contains(h.opts.AllowedRoles, r) {
			return true
		}
		queue = append(queue, h.opts.Inherits[r]...)
	}
	return false
}

func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     h.cookiePath,
		MaxAge:   maxAge,
		Secure:   h.opts.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func (h *Handler) clearCookie(w http.ResponseWriter, name string) { h.setCookie(w, name, "", -1) }

// --- cross-site request checks -----------------------------------------------

// sameOrigin reports whether a form post comes from this site: the
// browser's Sec-Fetch-Site, Origin or Referer, when sent, must name the
// request's own host (and https when Secure). A request with none of them
// (not a browser) passes; the CSRF token is checked in any case.
func (h *Handler) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	check := func(raw string) bool {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
		if h.opts.Secure {
			return u.Scheme == "https"
		}
		return u.Scheme == "http" || u.Scheme == "https"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		return check(origin) // "null" fails
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return check(ref)
	}
	return true
}

// parseForm reads a bounded urlencoded body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("admin: read form: %w", err)
	}
	return nil
}

// --- sign-in ----------------------------------------------------------------

type loginData struct {
	CSRF    string
	Error   string
	Secure  bool
	Warning string
}

// loginForm shows the sign-in form, or sends a signed-in person on.
func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, state := h.currentSession(r.Context(), r); state == authorized {
		http.Redirect(w, r, basePath, http.StatusSeeOther)
		return
	}
	h.renderLogin(w, r, http.StatusOK, "")
}

// renderLogin renders the form with a login CSRF token, reusing the
// request's CSRF cookie when it is well formed.
func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	nonce := ""
	if c, err := r.Cookie(h.csrfCookie); err == nil && validNonce(c.Value) {
		nonce = c.Value
	}
	if nonce == "" {
		var err error
		if nonce, err = randomToken(); err != nil {
			h.logger.ErrorContext(r.Context(), "admin: csrf token", "err", err)
			h.renderError(w, http.StatusInternalServerError, "Unavailable", "The sign-in page is temporarily unavailable.")
			return
		}
		h.setCookie(w, h.csrfCookie, nonce, int(time.Hour/time.Second))
	}
	data := loginData{CSRF: h.seal.loginToken(nonce), Error: msg, Secure: h.opts.Secure}
	if !h.opts.Secure && !netx.IsLoopbackHost(r.Host) {
		data.Warning = "This page is served without TLS: the key you paste travels in clear text."
	}
	h.render(w, status, "login.html", data)
}

// login checks a pasted credential and opens a session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !h.acceptForm(w, r) {
		return
	}
	c, err := r.Cookie(h.csrfCookie)
	if err != nil || !h.seal.checkLoginToken(c.Value, r.PostForm.Get("csrf")) {
		h.renderError(w, http.StatusForbidden, "Request refused", "The form has expired. Reload the sign-in page and try again.")
		return
	}

	source := netx.SourceKey(netx.PeerIP(r))
	rec := &guard.Record{Time: h.opts.Now(), Method: "admin/login", Target: "admin", ClientAddr: source, Transport: "http"}
	if wait, locked := h.lockout.Locked(ctx, source); locked {
		rec.Decision, rec.Reason = guard.AuthFailed, "source locked out after repeated sign-in failures"
		h.audit(ctx, rec)
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		h.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed sign-in attempts. Try again later.")
		return
	}

	secret := strings.TrimSpace(r.PostForm.Get("credential"))
	var p *guard.Principal
	if secret == "" || len(secret) > MaxCredentialBytes {
		err = fmt.Errorf("%w: empty or oversized credential", guard.ErrInvalidCredentials)
	} else {
		p, err = h.opts.Authenticator.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: secret})
	}
	// The secret is not used again: never logged, audited or stored.
	if err != nil {
		if !errors.Is(err, guard.ErrInvalidCredentials) {
			rec.Decision, rec.Reason = guard.Failed, "authentication unavailable"
			h.logger.ErrorContext(ctx, "admin: authentication unavailable", "err", err)
			h.audit(ctx, rec)
			h.renderLogin(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
			return
		}
		rec.Decision, rec.Reason = guard.AuthFailed, err.Error()
		if wait, locked := h.lockout.Failure(ctx, source); locked {
			rec.Reason += fmt.Sprintf("; source locked out for %v", wait.Round(time.Second))
		}
		h.audit(ctx, rec)
		h.renderLogin(w, r, http.StatusUnauthorized, "Sign-in failed. Check the key or token and try again.")
		return
	}

	held := h.heldRoles(p)
	rec.Subject, rec.Issuer, rec.AuthMethod, rec.KeyID, rec.Roles = p.Subject, p.Issuer, p.Method, p.KeyID, held
	granting := h.grantingRoles(held)
	if len(granting) == 0 {
		rec.Decision = guard.Denied
		rec.Reason = "admin page requires role " + strings.Join(h.opts.AllowedRoles, " or ")
		rec.RequiredRoles = h.opts.AllowedRoles
		h.audit(ctx, rec)
		h.renderForbidden(w, display(p.Subject), nil)
		return
	}

	now := h.opts.Now()
	expires := now.Add(h.opts.SessionTTL)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(expires) {
		expires = p.ExpiresAt
	}
	csrf, err := randomToken()
	if err != nil {
		h.logger.ErrorContext(ctx, "admin: csrf token", "err", err)
		h.renderError(w, http.StatusInternalServerError, "Unavailable", "Sign-in is temporarily unavailable.")
		return
	}
	s := &session{
		Subject: truncateBytes(p.Subject, maxSubjectBytes), Issuer: truncateBytes(p.Issuer, maxSubjectBytes),
		Method: string(p.Method), Roles: granting, KeyID: p.KeyID, TokenID: p.TokenID,
		Expires: expires.Unix(), CSRF: csrf,
	}
	value, err := h.seal.seal(s)
	if err != nil {
		h.logger.ErrorContext(ctx, "admin: seal session", "err", err)
		h.renderError(w, http.StatusInternalServerError, "Unavailable", "Sign-in is temporarily unavailable.")
		return
	}
	rec.Decision, rec.Reason = guard.Allowed, "signed in to the admin page"
	if err := h.recordAudit(ctx, rec); err != nil {
		// mcpguard does not do what it cannot audit.
		h.renderLogin(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	maxAge := int(expires.Sub(now) / time.Second)
	h.setCookie(w, h.sessionCookie, value, maxAge)
	h.clearCookie(w, h.csrfCookie)
	http.Redirect(w, r, basePath, http.StatusSeeOther)
}

// acceptForm checks that a form POST comes from this site and parses it;
// otherwise it renders the refusal and returns false.
func (h *Handler) acceptForm(w http.ResponseWriter, r *http.Request) bool {
	if !h.sameOrigin(r) {
		h.renderError(w, http.StatusForbidden, "Request refused", "This form was submitted from another site.")
		return false
	}
	if err := parseForm(w, r); err != nil {
		h.renderError(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return false
	}
	return true
}

// logout ends the session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if !h.acceptForm(w, r) {
		return
	}
	c, err := r.Cookie(h.sessionCookie)
	if err != nil {
		http.Redirect(w, r, loginPath, http.StatusSeeOther)
		return
	}
	s, err := h.seal.open(c.Value, h.opts.Now())
	if err != nil {
		h.clearCookie(w, h.sessionCookie)
		http.Redirect(w, r, loginPath, http.StatusSeeOther)
		return
	}
	if subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(r.PostForm.Get("csrf"))) != 1 {
		h.renderError(w, http.StatusForbidden, "Request refused", "The form has expired. Reload the page and try again.")
		return
	}
	h.clearCookie(w, h.sessionCookie)
	http.Redirect(w, r, loginPath, http.StatusSeeOther)
}

// audit records rec, logging a failure.
func (h *Handler) audit(ctx context.Context, rec *guard.Record) { _ = h.recordAudit(ctx, rec) }

func (h *Handler) recordAudit(ctx context.Context, rec *guard.Record) error {
	if h.opts.Audit == nil {
		return nil
	}
	if err := h.opts.Audit.Record(ctx, rec); err != nil {
		h.logger.ErrorContext(ctx, "admin: audit write failed", "err", err)
		return fmt.Errorf("admin: audit: %w", err)
	}
	return nil
}

// --- the dashboard ------------------------------------------------------------

type filterForm struct {
	Decision string
	User     string
	Tool     string
}

type row struct {
	Time     string
	FullTime string
	Decision string
	User     string
	Method   string
	Target   string
	Reason   string
	Client   string
}

type counts struct {
	Total, Allowed, Denied, AuthFailed, RateLimited, Failed int
}

type dashboardData struct {
	Subject   string
	Roles     string
	CSRF      string
	Filter    filterForm
	Filtered  bool
	Decisions []string
	Recent    []row
	Denials   []row
	Counts    counts
	Error     string
	Generated string
	Limit     int
}

// denialOutcomes are the decisions the "Recent denials" section shows.
var denialOutcomes = []guard.Outcome{guard.Denied, guard.AuthFailed, guard.RateLimited}

// dashboard shows recent decisions and denials.
func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, state := h.currentSession(ctx, r)
	switch state {
	case noSession:
		if _, err := r.Cookie(h.sessionCookie); err == nil {
			h.clearCookie(w, h.sessionCookie)
		}
		http.Redirect(w, r, loginPath, http.StatusSeeOther)
		return
	case unavailable:
		h.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The store is temporarily unavailable.")
		return
	case forbidden:
		h.renderForbidden(w, display(s.Subject), s)
		return
	}

	data := dashboardData{
		Subject:   display(s.Subject),
		Roles:     display(strings.Join(s.Roles, ", ")),
		CSRF:      s.CSRF,
		Generated: h.opts.Now().UTC().Format(timeLayout) + " UTC",
		Limit:     RecentLimit,
	}
	for _, o := range []guard.Outcome{guard.Allowed, guard.Denied, guard.AuthFailed, guard.RateLimited, guard.Failed} {
		data.Decisions = append(data.Decisions, string(o))
	}
	f, ferr := parseFilter(r.URL.Query())
	data.Filter = f
	data.Filtered = f != filterForm{}
	if ferr != nil {
		data.Filter = filterForm{}
		data.Filtered = false
		data.Error = "Invalid filter: " + ferr.Error() + "."
		h.render(w, http.StatusBadRequest, "dashboard.html", data)
		return
	}

	recent, err := h.opts.Store.QueryAudit(ctx, store.AuditQuery{Decision: f.Decision, User: f.User, Tool: f.Tool, Limit: RecentLimit})
	if err != nil {
		h.logger.ErrorContext(ctx, "admin: query audit", "err", err)
		h.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The audit records could not be read.")
		return
	}
	var denials []guard.Record
	for _, o := range denialOutcomes {
		recs, err := h.opts.Store.QueryAudit(ctx, store.AuditQuery{Decision: string(o), User: f.User, Tool: f.Tool, Limit: RecentLimit})
		if err != nil {
			h.logger.ErrorContext(ctx, "admin: query audit", "err", err)
			h.renderError(w, http.StatusServiceUnavailable, "Unavailable", "The audit records could not be read.")
			return
		}
		denials = append(denials, recs...)
	}
	slices.SortStableFunc(denials, func(a, b guard.Record) int { return b.Time.Compare(a.Time) })
	if len(denials) > RecentLimit {
		denials = denials[:RecentLimit]
	}

	for i := range recent {
		data.Counts.add(recent[i].Decision)
		data.Recent = append(data.Recent, toRow(&recent[i]))
	}
	for i := range denials {
		data.Denials = append(data.Denials, toRow(&denials[i]))
	}
	h.render(w, http.StatusOK, "dashboard.html", data)
}

func (c *counts) add(o guard.Outcome) {
	c.Total++
	switch o {
	case guard.Allowed:
		c.Allowed++
	case guard.Denied:
		c.Denied++
	case guard.AuthFailed:
		c.AuthFailed++
	case guard.RateLimited:
		c.RateLimited++
	case guard.Failed:
		c.Failed++
	}
}

// parseFilter validates the page's query parameters.
func parseFilter(q url.Values) (filterForm, error) {
	var f filterForm
	if d := strings.TrimSpace(q.Get("decision")); d != "" {
		o := store.AuditQuery{Decision: d}.NormalizedDecision()
		if o == "" {
			return f, errors.New("unknown decision: choose one from the list")
		}
		f.Decision = string(o)
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"user", &f.User}, {"tool", &f.Tool}} {
		v := strings.TrimSpace(q.Get(p.name))
		if len(v) > MaxFilterBytes || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return filterForm{}, fmt.Errorf("the %s filter must be at most %d bytes of printable text", p.name, MaxFilterBytes)
		}
		*p.dst = v
	}
	return f, nil
}

func toRow(r *guard.Record) row {
	reason := r.Reason
	if r.Error != "" {
		if reason != "" {
			reason += "; "
		}
		reason += "error: " + r.Error
	}
	client := r.ClientAddr
	if r.Transport != "" {
		if client != "" {
			client += " · "
		}
		client += r.Transport
	}
	return row{
		Time:     r.Time.UTC().Format(timeLayout),
		FullTime: r.Time.UTC().Format(time.RFC3339Nano),
		Decision: display(string(r.Decision)),
		User:     display(r.Subject),
		Method:   display(r.Method),
		Target:   display(r.Target),
		Reason:   display(reason),
		Client:   display(client),
	}
}

// display makes untrusted text fit for one table cell: at most maxCellRunes
// runes ("…" marks a cut), with control characters, invisible formatting
// characters (bidirectional overrides, zero-width characters) and invalid
// UTF-8 replaced by U+FFFD. HTML escaping is html/template's job.
func display(s string) string {
	var b strings.Builder
	runes := 0
	for _, r := range s {
		if runes == maxCellRunes {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			r == '\u2028' || r == '\u2029' {
			r = '\uFFFD'
		}
		b.WriteRune(r)
		runes++
	}
	return b.String()
}

// truncateBytes cuts s to at most n bytes on a rune boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// --- rendering ---------------------------------------------------------------

type errorData struct {
	Title   string
	Message string
	Subject string
	CSRF    string
	Roles   string
}

func (h *Handler) renderError(w http.ResponseWriter, status int, title, msg string) {
	h.render(w, status, "error.html", errorData{Title: title, Message: msg})
}

// renderForbidden is the 403 page for a principal without an allowed role;
// with a session, it offers to sign out.
func (h *Handler) renderForbidden(w http.ResponseWriter, subject string, s *session) {
	d := errorData{
		Title:   "Access denied",
		Message: "This page requires the role " + strings.Join(h.opts.AllowedRoles, " or ") + ".",
		Subject: subject,
	}
	if s != nil {
		d.CSRF = s.CSRF
	}
	h.render(w, http.StatusForbidden, "error.html", d)
}

// render executes a template into a buffer first, so that a template error
// never sends half a page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		h.logger.Error("admin: render template", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
