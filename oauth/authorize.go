package oauth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// Sign-in bounds.
const (
	txnTTL        = 10 * time.Minute
	sessionTTL    = 12 * time.Hour
	maxState      = 512
	maxFieldBytes = 1024
)

// txn is a sign-in in progress, sealed into the transaction cookie: the
// validated authorization request, and how far the person has got.
type txn struct {
	ID          string   `json:"id"`
	ClientID    string   `json:"cid"`
	ClientName  string   `json:"cn"`
	RedirectURI string   `json:"ru"`
	State       string   `json:"st,omitempty"`
	Challenge   string   `json:"cc"`
	Resource    string   `json:"res"`
	Scopes      []string `json:"sc"`
	LoopbackCID bool     `json:"lb,omitempty"` // a metadata-document client whose redirects are all loopback
	CSRF        string   `json:"csrf"`
	User        string   `json:"u,omitempty"`
	AuthTime    int64    `json:"at,omitempty"`
	MFATime     int64    `json:"mt,omitempty"`
	NeedsMFA    bool     `json:"nm,omitempty"`
}

// loginSession remembers a signed-in person across authorizations.
type loginSession struct {
	User     string `json:"u"`
	AuthTime int64  `json:"at"`
	MFATime  int64  `json:"mt,omitempty"`
}

const (
	purposeTxn     = "txn"
	purposeSession = "session"
)

func (s *Server) cookieName(base string) string {
	if s.cfg.SecureCookies {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(base), Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(base), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
}

var (
	challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43,128}$`)
	verifierRE  = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
)

// authorize validates an authorization request and starts the sign-in.
// Until the client and its redirect URI are known good, errors are shown
// on a page and never redirected: an attacker must not be able to use
// mcpguard as an open redirector.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, name := range []string{"client_id", "redirect_uri", "state", "scope", "resource", "code_challenge", "code_challenge_method", "response_type"} {
		if len(q[name]) > 1 {
			s.errorPage(w, r, http.StatusBadRequest, "The request repeats the "+name+" parameter.")
			return
		}
	}
	cl, err := s.lookupClient(r.Context(), q.Get("client_id"))
	if err != nil {
		s.audit(r, "oauth/authorize", "", safeField(q.Get("client_id")), guard.Denied, err.Error())
		s.errorPage(w, r, http.StatusBadRequest, "Unknown or invalid client: "+err.Error())
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" && len(cl.RedirectURIs) == 1 {
		redirect = cl.RedirectURIs[0]
	}
	if !slices.Contains(cl.RedirectURIs, redirect) || checkRedirectURI(redirect) != nil {
		s.audit(r, "oauth/authorize", "", cl.ID, guard.Denied, "redirect_uri not registered for the client")
		s.errorPage(w, r, http.StatusBadRequest, "The redirect URI is not registered for this client.")
		return
	}
	state := q.Get("state")
	fail := func(code, description string) {
		s.audit(r, "oauth/authorize", "", cl.ID, guard.Denied, code+": "+description)
		redirectError(w, r, redirect, state, s.cfg.Issuer, code, description)
	}
	switch {
	case len(state) > maxState:
		fail("invalid_request", "state is too long")
		return
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case q.Get("code_challenge") == "":
		fail("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "only the S256 code_challenge_method is supported")
		return
	case !challengeRE.MatchString(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge must be 43 to 128 base64url characters")
		return
	case !slices.Contains(cl.GrantTypes, "authorization_code"):
		fail("unauthorized_client", "the client may not use the authorization code grant")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		fail("invalid_target", "the resource parameter is required (RFC 8707)")
		return
	}
	if !slices.Contains(s.cfg.Resources, resource) {
		fail("invalid_target", "this server does not issue tokens for that resource")
		return
	}
	scopes, err := s.requestedScopes(q.Get("scope"), cl)
	if err != nil {
		fail("invalid_scope", err.Error())
		return
	}
	t := &txn{
		ID: randomHex(12), ClientID: cl.ID, ClientName: cl.Name, RedirectURI: redirect, State: state,
		Challenge: q.Get("code_challenge"), Resource: resource, Scopes: scopes, CSRF: randomToken(24),
		LoopbackCID: cl.metadataDocument && allLoopback(cl.RedirectURIs),
	}
	// A person already signed in goes straight on.
	var sess loginSession
	if c, err := r.Cookie(s.cookieName("mcpguard_oauth_session")); err == nil && s.sealer.open(purposeSession, c.Value, s.now(), &sess) == nil {
		if u, err := s.cfg.Store.GetUser(r.Context(), sess.User); err == nil && (len(u.MFASecret) == 0 || sess.MFATime != 0) {
			t.User, t.AuthTime, t.MFATime = u.Name, sess.AuthTime, sess.MFATime
			s.next(w, r, t, u)
			return
		}
	}
	s.showLogin(w, r, t, "")
}

// requestedScopes parses the scope parameter: every scope must exist and
// be allowed to the client; none means the defaults.
func (s *Server) requestedScopes(raw string, cl *client) ([]string, error) {
	names := strings.Fields(raw)
	if len(names) == 0 {
		names = s.cfg.DefaultScopes
	}
	if len(names) > 50 {
		return nil, errors.New("too many scopes")
	}
	var out []string
	for _, n := range names {
		if _, ok := s.scopes[n]; !ok {
			return nil, fmt.Errorf("unknown scope %q", safeField(n))
		}
		if len(cl.Scopes) > 0 && !slices.Contains(cl.Scopes, n) {
			return nil, fmt.Errorf("the client may not request scope %q", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// readTxn opens the transaction cookie and checks the form's CSRF token
// and the request's Origin. On failure it answers and returns nil.
func (s *Server) readTxn(w http.ResponseWriter, r *http.Request, method string) *txn {
	if o := r.Header.Get("Origin"); o != "" && o != s.origin() {
		s.audit(r, method, "", "", guard.Denied, "cross-origin form post refused")
		s.errorPage(w, r, http.StatusForbidden, "This form was posted from another site and was refused.")
		return nil
	}
	c, err := r.Cookie(s.cookieName("mcpguard_oauth_txn"))
	var t txn
	if err != nil || s.sealer.open(purposeTxn, c.Value, s.now(), &t) != nil {
		s.audit(r, method, "", "", guard.Denied, "no valid sign-in transaction (expired, or cookies blocked)")
		s.errorPage(w, r, http.StatusBadRequest, "Your sign-in expired or cookies are blocked. Go back to the application and start again.")
		return nil
	}
	token := r.PostFormValue("csrf_token")
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(t.CSRF)) != 1 {
		s.audit(r, method, t.User, t.ClientID, guard.Denied, "missing or wrong CSRF token")
		s.errorPage(w, r, http.StatusForbidden, "The form's security token is missing or wrong. Go back to the application and start again.")
		return nil
	}
	return &t
}

// origin is the issuer's origin, which every form posts from.
func (s *Server) origin() string {
	u, _ := url.Parse(s.cfg.Issuer)
	return u.Scheme + "://" + u.Host
}

// login checks the password form.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	t := s.readTxn(w, r, "oauth/login")
	if t == nil {
		return
	}
	ctx := r.Context()
	source := clientIP(r)
	if s.cfg.Lockout != nil {
		if _, locked := s.cfg.Lockout.Locked(ctx, source); locked {
			s.audit(r, "oauth/login", "", t.ClientID, guard.AuthFailed, "source locked out after repeated failures")
			s.showLogin(w, r, t, "Too many failed attempts. Try again later.")
			return
		}
	}
	name, pw := r.PostFormValue("username"), r.PostFormValue("password")
	if name == "" || len(name) > maxFieldBytes || len(pw) > maxFieldBytes {
		s.showLogin(w, r, t, "Enter your username and password.")
		return
	}
	u, err := s.cfg.Store.GetUser(ctx, name)
	ok := false
	reason := "unknown user"
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.hasher.VerifyDummy(pw)
	case err != nil:
		s.logger.Error("oauth: read user", "err", err)
		s.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	case u.LockedUntil.After(s.now()):
		s.hasher.VerifyDummy(pw)
		reason = "account locked after repeated failures"
	default:
		ok, err = s.hasher.Verify(u.PasswordHash, pw)
		if err != nil {
			s.logger.Error("oauth: stored password hash unusable", "user", u.Name, "err", err)
		}
		reason = "wrong password"
	}
	if !ok {
		if u != nil && reason == "wrong password" {
			if until, err := s.cfg.Store.RecordLoginFailure(ctx, u.Name, s.now(), s.cfg.Login.MaxFailures, s.cfg.Login.LockFor); err == nil && until.After(s.now()) {
				reason += "; account locked until " + until.UTC().Format(time.RFC3339)
			}
		}
		if s.cfg.Lockout != nil {
			s.cfg.Lockout.Failure(ctx, source)
		}
		s.audit(r, "oauth/login", safeField(name), t.ClientID, guard.AuthFailed, reason)
		// One message for every failure: no user enumeration.
		s.showLogin(w, r, t, "Invalid username or password.")
		return
	}
	s.cfg.Store.ResetLoginFailures(ctx, u.Name)
	s.audit(r, "oauth/login", u.Name, t.ClientID, guard.Allowed, "password accepted")
	t.User, t.AuthTime, t.MFATime = u.Name, s.now().Unix(), 0
	t.NeedsMFA = len(u.MFASecret) > 0
	t.CSRF = randomToken(24) // a new token for every step
	s.next(w, r, t, u)
}

// next moves a signed-in transaction on: MFA if the user has it and has
// not passed it, then consent (skipped when already given), then the code.
func (s *Server) next(w http.ResponseWriter, r *http.Request, t *txn, u *store.User) {
	if len(u.MFASecret) > 0 && t.MFATime == 0 {
		t.NeedsMFA = true
		s.showMFA(w, r, t, "")
		return
	}
	granted := s.grantable(u.Roles, t.Scopes)
	consented, err := s.cfg.Store.ConsentedScopes(r.Context(), u.Name, t.ClientID)
	if err != nil {
		s.logger.Error("oauth: read consent", "err", err)
		s.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	if len(granted) > 0 && !slices.ContainsFunc(granted, func(sc string) bool { return !slices.Contains(consented, sc) }) {
		s.issueCode(w, r, t, granted)
		return
	}
	s.showConsent(w, r, t, granted)
}

// mfa checks the TOTP or backup code form.
func (s *Server) mfa(w http.ResponseWriter, r *http.Request) {
	t := s.readTxn(w, r, "oauth/mfa")
	if t == nil {
		return
	}
	if t.User == "" {
		s.errorPage(w, r, http.StatusBadRequest, "Sign in with your password first.")
		return
	}
	ctx := r.Context()
	u, err := s.cfg.Store.GetUser(ctx, t.User)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Your account is no longer available.")
		return
	}
	if u.LockedUntil.After(s.now()) {
		s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.AuthFailed, "account locked after repeated failures")
		s.errorPage(w, r, http.StatusForbidden, "Too many failed attempts. Try again later.")
		return
	}
	if s.mfaAttemptsUsed(t.ID) >= s.cfg.Login.MaxMFAAttempts {
		s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.AuthFailed, "too many wrong codes in this sign-in")
		s.clearCookie(w, "mcpguard_oauth_txn")
		s.errorPage(w, r, http.StatusForbidden, "Too many wrong codes. Go back to the application and start again.")
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	ok, how := false, ""
	if len(code) <= 64 {
		if step, valid := totp.Validate(u.MFASecret, code, s.now()); valid {
			fresh, err := s.cfg.Store.AdvanceMFAStep(ctx, u.Name, step)
			ok, how = err == nil && fresh, "TOTP code"
			if err == nil && !fresh {
				how = "TOTP code already used"
			}
		} else if len(code) >= 10 {
			used, err := s.cfg.Store.UseBackupCode(ctx, u.Name, totp.HashBackupCode(code))
			ok, how = err == nil && used, "backup code"
		}
	}
	if !ok {
		n := s.countMFAFailure(t.ID)
		s.cfg.Store.RecordLoginFailure(ctx, u.Name, s.now(), s.cfg.Login.MaxFailures, s.cfg.Login.LockFor)
		reason := "wrong MFA code"
		if how == "TOTP code already used" {
			reason = "TOTP code replayed"
		}
		s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.AuthFailed, fmt.Sprintf("%s (%d of %d attempts)", reason, n, s.cfg.Login.MaxMFAAttempts))
		s.showMFA(w, r, t, "That code is not valid. Enter the current code from your authenticator app, or a backup code.")
		return
	}
	s.cfg.Store.ResetLoginFailures(ctx, u.Name)
	s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.Allowed, how+" accepted")
	t.MFATime, t.NeedsMFA, t.CSRF = s.now().Unix(), false, randomToken(24)
	s.next(w, r, t, u)
}

func (s *Server) mfaAttemptsUsed(id string) int {
	s.mfaMu.Lock()
	defer s.mfaMu.Unlock()
	return s.mfaAttempts[id]
}

func (s *Server) countMFAFailure(id string) int {
	s.mfaMu.Lock()
	defer s.mfaMu.Unlock()
	if len(s.mfaAttempts) > 100_000 { // bounded: a flood of transactions cannot grow it forever
		clear(s.mfaAttempts)
	}
	s.mfaAttempts[id]++
	return s.mfaAttempts[id]
}

// consent handles the consent form.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	t := s.readTxn(w, r, "oauth/consent")
	if t == nil {
		return
	}
	if t.User == "" || t.NeedsMFA {
		s.audit(r, "oauth/consent", t.User, t.ClientID, guard.Denied, "consent posted before sign-in completed")
		s.errorPage(w, r, http.StatusForbidden, "Sign in first.")
		return
	}
	u, err := s.cfg.Store.GetUser(r.Context(), t.User)
	if err != nil || (len(u.MFASecret) > 0 && t.MFATime == 0) {
		s.errorPage(w, r, http.StatusForbidden, "Sign in first.")
		return
	}
	granted := s.grantable(u.Roles, t.Scopes)
	if r.PostFormValue("decision") != "allow" || len(granted) == 0 {
		s.audit(r, "oauth/consent", u.Name, t.ClientID, guard.Denied, "the user denied access")
		s.clearCookie(w, "mcpguard_oauth_txn")
		redirectError(w, r, t.RedirectURI, t.State, s.cfg.Issuer, "access_denied", "the user denied access")
		return
	}
	if err := s.cfg.Store.GrantConsent(r.Context(), u.Name, t.ClientID, granted, s.now()); err != nil {
		s.logger.Error("oauth: store consent", "err", err)
		s.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	s.audit(r, "oauth/consent", u.Name, t.ClientID, guard.Allowed, "consent to "+strings.Join(granted, " "))
	s.issueCode(w, r, t, granted)
}

// grantable narrows requested scopes to those whose role the user holds.
func (s *Server) grantable(roles, requested []string) []string {
	var out []string
	for _, name := range requested {
		if sc, ok := s.scopes[name]; ok && s.cfg.HasRole(roles, sc.Role) {
			out = append(out, name)
		}
	}
	return out
}

// issueCode stores a new code and redirects to the client with it.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, t *txn, scopes []string) {
	code := randomToken(32)
	now := s.now()
	ac := &store.AuthCode{
		Hash: digest(code), FamilyID: randomHex(12), ClientID: t.ClientID, RedirectURI: t.RedirectURI, Subject: t.User,
		Scopes: scopes, Resource: t.Resource, CodeChallenge: t.Challenge, AuthTime: time.Unix(t.AuthTime, 0),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL),
	}
	if t.MFATime != 0 {
		ac.MFATime = time.Unix(t.MFATime, 0)
	}
	if err := s.cfg.Store.CreateAuthCode(r.Context(), ac); err != nil {
		s.logger.Error("oauth: store code", "err", err)
		s.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	s.audit(r, "oauth/authorize", t.User, t.ClientID, guard.Allowed, "authorization code issued for "+strings.Join(scopes, " "))
	if sess, err := s.sealer.seal(purposeSession, loginSession{User: t.User, AuthTime: t.AuthTime, MFATime: t.MFATime}, now.Add(sessionTTL)); err == nil {
		s.setCookie(w, "mcpguard_oauth_session", sess, sessionTTL)
	}
	s.clearCookie(w, "mcpguard_oauth_txn")
	v := url.Values{"code": {code}, "iss": {s.cfg.Issuer}}
	if t.State != "" {
		v.Set("state", t.State)
	}
	http.Redirect(w, r, withQuery(t.RedirectURI, v), http.StatusSeeOther)
}

// redirectError sends an error to the client's (validated) redirect URI.
func redirectError(w http.ResponseWriter, r *http.Request, redirect, state, issuer, code, description string) {
	v := url.Values{"error": {code}, "error_description": {description}, "iss": {issuer}}
	if state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirect, v), http.StatusSeeOther)
}

func withQuery(base string, v url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + v.Encode()
}

// checkRedirectURI accepts https URLs, and http ones on a loopback host;
// never a fragment or credentials.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil {
		return errors.New("redirect URIs must be absolute URLs without a fragment")
	}
	if u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil
	}
	return errors.New("redirect URIs must use https (http only on a loopback host)")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func allLoopback(uris []string) bool {
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil || !isLoopback(u.Hostname()) {
			return false
		}
	}
	return len(uris) > 0
}

// clientIP is the request's peer address without the port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// safeField bounds an untrusted value before it reaches a message.
func safeField(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
