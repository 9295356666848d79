package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/lrulist"
	"github.com/mcpguard/mcpguard/store"
)

// Sign-in bounds.
const (
	// sessionTTL is how long after the password was entered a login
	// session may stand in for it.
	sessionTTL = 12 * time.Hour
	// maxUsername bounds the username field.
	maxUsername = 256
	// maxCodeField bounds the MFA code field (TOTP or backup code).
	maxCodeField = 64
)

const unavailable = "Sign-in is temporarily unavailable. Try again later."

// loginSession remembers a signed-in person across authorizations.
type loginSession struct {
	User string `json:"u"`
	// Binding ties the session to the password it was opened with: a
	// password change ends it.
	Binding  string `json:"b"`
	AuthTime int64  `json:"at"`
	MFATime  int64  `json:"mt,omitempty"`
}

// binding is a digest of the user's password hash (itself salted), so that
// sessions and transactions opened with an old password are refused.
func binding(u *store.User) string {
	sum := sha256.Sum256([]byte("mcpguard oauth session binding\x00" + u.PasswordHash))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

func bindingMatches(u *store.User, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(binding(u)), []byte(b)) == 1
}

// resumeSession continues t with the person's login session, if a valid
// one exists: straight to MFA (if enrolled and not passed in the session),
// consent or the code. It reports whether it answered.
func (s *Server) resumeSession(w http.ResponseWriter, r *http.Request, t *txn) bool {
	c, err := r.Cookie(s.cookieName(cookieSession))
	if err != nil {
		return false
	}
	var sess loginSession
	now := s.now()
	if s.sealer.open(purposeSession, c.Value, now, &sess) != nil || now.Sub(time.Unix(sess.AuthTime, 0)) >= sessionTTL {
		return false
	}
	u, err := s.cfg.Store.GetUser(r.Context(), sess.User)
	if err != nil || !bindingMatches(u, sess.Binding) {
		return false // user gone, or the password changed since
	}
	t.User, t.Binding, t.AuthTime, t.MFATime = u.Name, sess.Binding, sess.AuthTime, sess.MFATime
	if slices.Contains(t.Scopes, ScopeMFA) {
		// A step-up: the second factor is asked for again, whatever the
		// session remembers.
		t.MFATime = 0
	}
	s.next(w, r, t, u)
	return true
}

// readTxn checks a form post: its Origin, the transaction cookie and the
// form's CSRF token. On failure it answers (403) and returns nil.
func (s *Server) readTxn(w http.ResponseWriter, r *http.Request, method string) *txn {
	if o := r.Header.Get("Origin"); o != "" && o != s.origin {
		s.audit(r, method, "", "", guard.Denied, "cross-origin form post refused (Origin "+safeOrigin(o)+")")
		s.errorPage(w, http.StatusForbidden, "This form was posted from another site and was refused.")
		return nil
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		s.audit(r, method, "", "", guard.Denied, "cross-site form post refused (Sec-Fetch-Site)")
		s.errorPage(w, http.StatusForbidden, "This form was posted from another site and was refused.")
		return nil
	}
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return nil
	}
	c, err := r.Cookie(s.cookieName(cookieTxn))
	var t txn
	if err != nil || s.sealer.open(purposeTxn, c.Value, s.now(), &t) != nil {
		s.audit(r, method, "", "", guard.Denied, "CSRF: no valid sign-in transaction cookie (expired, forged, or cookies blocked)")
		s.errorPage(w, http.StatusForbidden, "Your sign-in expired or your browser blocked its cookie. Go back to the application and start again.")
		return nil
	}
	token := r.PostForm.Get("csrf_token")
	if token == "" || len(r.PostForm["csrf_token"]) != 1 || subtle.ConstantTimeCompare([]byte(token), []byte(t.CSRF)) != 1 {
		s.audit(r, method, t.User, t.ClientID, guard.Denied, "CSRF: missing or wrong form token")
		s.errorPage(w, http.StatusForbidden, "The form's security token is missing or wrong. Go back to the application and start again.")
		return nil
	}
	return &t
}

// safeOrigin bounds an Origin header for an audit reason.
func safeOrigin(o string) string {
	if len(o) > 100 {
		o = o[:100]
	}
	return url.PathEscape(o)
}

// login checks the password form.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	t := s.readTxn(w, r, "oauth/login")
	if t == nil {
		return
	}
	ctx := r.Context()
	source := netx.SourceKey(netx.PeerIP(r))
	if s.cfg.Lockout != nil {
		if _, locked := s.cfg.Lockout.Locked(ctx, source); locked {
			s.audit(r, "oauth/login", "", t.ClientID, guard.AuthFailed, "source locked out after repeated failures")
			s.showLogin(w, t, "Too many failed attempts from your network. Try again later.")
			return
		}
	}
	name, pw := r.PostForm.Get("username"), r.PostForm.Get("password")
	if name == "" || pw == "" || len(name) > maxUsername || len(pw) > password.MaxLength {
		s.showLogin(w, t, "Invalid username or password.")
		return
	}
	u, err := s.cfg.Store.GetUser(ctx, name)
	ok, subject, reason := false, "", ""
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Same work as for a real user; the name is not recorded, since
		// people type their password into the username field.
		s.hasher.VerifyDummy(pw)
		reason = "unknown user"
	case err != nil:
		s.logger.Error("oauth: read user", "err", err)
		s.errorPage(w, http.StatusServiceUnavailable, unavailable)
		return
	case u.LockedUntil.After(s.now()):
		s.hasher.VerifyDummy(pw)
		subject, reason = u.Name, "account locked after repeated failures"
	default:
		subject = u.Name
		ok, err = s.hasher.Verify(u.PasswordHash, pw)
		if err != nil {
			s.logger.Error("oauth: a stored password hash is unusable", "user", u.Name, "err", err)
		}
		reason = "wrong password"
	}
	if !ok {
		if reason == "wrong password" {
			until, err := s.cfg.Store.RecordLoginFailure(ctx, u.Name, s.now(), s.cfg.Login.MaxFailures, s.cfg.Login.LockFor)
			if err != nil {
				s.logger.Error("oauth: record login failure", "err", err)
			} else if until.After(s.now()) {
				reason += "; account locked until " + until.UTC().Format(time.RFC3339)
			}
		}
		if s.cfg.Lockout != nil {
			s.cfg.Lockout.Failure(ctx, source)
		}
		s.audit(r, "oauth/login", subject, t.ClientID, guard.AuthFailed, reason)
		// One message for every failure: no user enumeration.
		s.showLogin(w, t, "Invalid username or password.")
		return
	}
	// The failure count is reset once the person is fully authenticated:
	// with MFA, only after the code. (Otherwise each correct password
	// would buy another round of MFA guesses.)
	if len(u.MFASecret) == 0 {
		if err := s.cfg.Store.ResetLoginFailures(ctx, u.Name); err != nil {
			s.logger.Error("oauth: reset login failures", "err", err)
		}
	}
	if s.audit(r, "oauth/login", u.Name, t.ClientID, guard.Allowed, "password accepted") != nil {
		s.errorPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	// A new transaction id and CSRF token for the authenticated part.
	t.ID, t.CSRF, t.Expires = randomHex(16), randomToken(32), s.now().Add(txnTTL).Unix()
	t.User, t.Binding, t.AuthTime, t.MFATime, t.MFAFails = u.Name, binding(u), s.now().Unix(), 0, 0
	s.next(w, r, t, u)
}

// next moves a signed-in transaction on: MFA if the user has it and has
// not passed it, then consent (skipped when already given), then the code.
func (s *Server) next(w http.ResponseWriter, r *http.Request, t *txn, u *store.User) {
	if len(u.MFASecret) > 0 && t.MFATime == 0 {
		s.showMFA(w, t, "")
		return
	}
	granted := s.grantable(u.Roles, len(u.MFASecret) > 0, t.Scopes)
	// A metadata-document client that only redirects to this computer can
	// be impersonated by any local program listening on its port, so the
	// person confirms it, with the warning, every time (MCP security best
	// practices).
	if len(granted) > 0 && !t.ForceConsent && !t.LoopbackCIMD {
		consented, err := s.cfg.Store.ConsentedScopes(r.Context(), u.Name, t.ClientID)
		if err != nil {
			s.logger.Error("oauth: read consent", "err", err)
			s.errorPage(w, http.StatusServiceUnavailable, unavailable)
			return
		}
		if !slices.ContainsFunc(granted, func(sc string) bool { return !slices.Contains(consented, sc) }) {
			s.issueCode(w, r, t, granted, "consent given before")
			return
		}
	}
	t.ForceConsent = false
	s.showConsent(w, t, granted)
}

// signedInUser returns the transaction's user, refusing (and answering)
// when there is none, it is gone, or its password changed since.
func (s *Server) signedInUser(w http.ResponseWriter, r *http.Request, t *txn, method string) *store.User {
	if t.User == "" {
		s.audit(r, method, "", t.ClientID, guard.Denied, "posted before the password was accepted")
		s.errorPage(w, http.StatusForbidden, "Sign in with your password first.")
		return nil
	}
	u, err := s.cfg.Store.GetUser(r.Context(), t.User)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.errorPage(w, http.StatusForbidden, "Your account is no longer available.")
		return nil
	case err != nil:
		s.logger.Error("oauth: read user", "err", err)
		s.errorPage(w, http.StatusServiceUnavailable, unavailable)
		return nil
	case !bindingMatches(u, t.Binding):
		s.audit(r, method, u.Name, t.ClientID, guard.Denied, "the password changed during the sign-in")
		s.errorPage(w, http.StatusForbidden, "Your password changed. Go back to the application and start again.")
		return nil
	}
	return u
}

// mfaSubmit checks the TOTP or backup code form.
func (s *Server) mfaSubmit(w http.ResponseWriter, r *http.Request) {
	t := s.readTxn(w, r, "oauth/mfa")
	if t == nil {
		return
	}
	u := s.signedInUser(w, r, t, "oauth/mfa")
	if u == nil {
		return
	}
	ctx := r.Context()
	if len(u.MFASecret) == 0 || t.MFATime != 0 {
		s.next(w, r, t, u) // nothing to check (any more)
		return
	}
	if u.LockedUntil.After(s.now()) {
		s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.AuthFailed, "account locked after repeated failures")
		s.clearCookie(w, cookieTxn)
		s.errorPage(w, http.StatusForbidden, "Too many failed attempts. Try again later.")
		return
	}
	if max(s.mfa.get(t.ID), t.MFAFails) >= s.cfg.Login.MaxMFAAttempts {
		s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.AuthFailed, "too many wrong codes in this sign-in")
		s.clearCookie(w, cookieTxn)
		s.errorPage(w, http.StatusForbidden, "Too many wrong codes. Go back to the application and start again.")
		return
	}
	code := strings.TrimSpace(r.PostForm.Get("code"))
	ok, how := false, "wrong MFA code"
	if code != "" && len(code) <= maxCodeField {
		if step, valid := totp.Validate(u.MFASecret, code, s.now()); valid {
			fresh, err := s.cfg.Store.AdvanceMFAStep(ctx, u.Name, step)
			if err != nil {
				s.logger.Error("oauth: record TOTP step", "err", err)
				s.errorPage(w, http.StatusServiceUnavailable, unavailable)
				return
			}
			ok, how = fresh, "TOTP code"
			if !fresh {
				how = "TOTP code replayed (already used)"
			}
		} else if len(code) >= 10 {
			used, err := s.cfg.Store.UseBackupCode(ctx, u.Name, totp.HashBackupCode(code))
			if err != nil {
				s.logger.Error("oauth: use backup code", "err", err)
				s.errorPage(w, http.StatusServiceUnavailable, unavailable)
				return
			}
			if used {
				ok, how = true, "backup code"
			}
		}
	}
	if !ok {
		t.MFAFails = max(s.mfa.add(t.ID, time.Unix(t.Expires, 0).Add(time.Minute)), t.MFAFails+1)
		reason := fmt.Sprintf("%s (%d of %d attempts)", how, t.MFAFails, s.cfg.Login.MaxMFAAttempts)
		if until, err := s.cfg.Store.RecordLoginFailure(ctx, u.Name, s.now(), s.cfg.Login.MaxFailures, s.cfg.Login.LockFor); err != nil {
			s.logger.Error("oauth: record login failure", "err", err)
		} else if until.After(s.now()) {
			reason += "; account locked until " + until.UTC().Format(time.RFC3339)
		}
		s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.AuthFailed, reason)
		if t.MFAFails >= s.cfg.Login.MaxMFAAttempts {
			s.clearCookie(w, cookieTxn)
			s.errorPage(w, http.StatusForbidden, "Too many wrong codes. Go back to the application and start again.")
			return
		}
		s.showMFA(w, t, "That code is not valid. Enter the current code from your authenticator app, or an unused backup code.")
		return
	}
	if err := s.cfg.Store.ResetLoginFailures(ctx, u.Name); err != nil {
		s.logger.Error("oauth: reset login failures", "err", err)
	}
	if s.audit(r, "oauth/mfa", u.Name, t.ClientID, guard.Allowed, how+" accepted") != nil {
		s.errorPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	t.MFATime, t.CSRF = s.now().Unix(), randomToken(32)
	s.next(w, r, t, u)
}

// consent handles the consent form.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	t := s.readTxn(w, r, "oauth/consent")
	if t == nil {
		return
	}
	u := s.signedInUser(w, r, t, "oauth/consent")
	if u == nil {
		return
	}
	if len(u.MFASecret) > 0 && t.MFATime == 0 {
		s.audit(r, "oauth/consent", u.Name, t.ClientID, guard.Denied, "consent posted before MFA was passed")
		s.errorPage(w, http.StatusForbidden, "Complete two-factor authentication first.")
		return
	}
	granted := s.grantable(u.Roles, len(u.MFASecret) > 0, t.Scopes)
	if r.PostForm.Get("decision") != "allow" || len(granted) == 0 {
		s.audit(r, "oauth/consent", u.Name, t.ClientID, guard.Denied, "the user denied access")
		s.clearCookie(w, cookieTxn)
		s.setSession(w, t)
		redirectError(w, r, t.RedirectURI, t.State, s.cfg.Issuer, "access_denied", "the user denied access")
		return
	}
	if err := s.cfg.Store.GrantConsent(r.Context(), u.Name, t.ClientID, granted, s.now()); err != nil {
		s.logger.Error("oauth: store consent", "err", err)
		s.errorPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	s.issueCode(w, r, t, granted, "consent given")
}

// issueCode stores a new code and redirects (303) to the client with it,
// state and iss.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, t *txn, scopes []string, how string) {
	code := randomToken(32)
	now := s.now()
	ac := &store.AuthCode{
		Hash: digest(code), FamilyID: randomHex(16), ClientID: t.ClientID, RedirectURI: t.RedirectURI, Subject: t.User,
		Scopes: scopes, Resource: t.Resource, CodeChallenge: t.Challenge, AuthTime: time.Unix(t.AuthTime, 0),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL),
	}
	if t.MFATime != 0 {
		ac.MFATime = time.Unix(t.MFATime, 0)
	}
	if s.audit(r, "oauth/consent", t.User, t.ClientID, guard.Allowed, how+"; authorization code issued for "+strings.Join(scopes, " ")) != nil {
		s.errorPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	if err := s.cfg.Store.CreateAuthCode(r.Context(), ac); err != nil {
		s.logger.Error("oauth: store authorization code", "err", err)
		s.errorPage(w, http.StatusServiceUnavailable, unavailable)
		return
	}
	s.clearCookie(w, cookieTxn)
	s.setSession(w, t)
	v := url.Values{"code": {code}, "iss": {s.cfg.Issuer}}
	if t.State != "" {
		v.Set("state", t.State)
	}
	http.Redirect(w, r, withQuery(t.RedirectURI, v), http.StatusSeeOther)
}

// setSession remembers the sign-in for sessionTTL after the password was
// entered (never longer: reusing a session does not extend it).
func (s *Server) setSession(w http.ResponseWriter, t *txn) {
	if t.User == "" || t.Binding == "" {
		return
	}
	exp := time.Unix(t.AuthTime, 0).Add(sessionTTL)
	left := exp.Sub(s.now())
	if left < time.Minute {
		return
	}
	v, err := s.sealer.seal(purposeSession, loginSession{User: t.User, Binding: t.Binding, AuthTime: t.AuthTime, MFATime: t.MFATime}, exp)
	if err != nil {
		return
	}
	s.setCookie(w, cookieSession, v, left)
}

// attemptCounter counts wrong MFA codes per sign-in transaction, in a
// bounded LRU: a replayed (older) transaction cookie gains no attempts on
// this replica, and the per-user lockout in the store bounds them across
// replicas.
type attemptCounter struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	items map[string]*lrulist.Node[attempts]
	lru   lrulist.List[attempts]
}

type attempts struct {
	id    string
	n     int
	until time.Time
}

func newAttemptCounter(max int, now func() time.Time) *attemptCounter {
	return &attemptCounter{max: max, now: now, items: map[string]*lrulist.Node[attempts]{}}
}

func (c *attemptCounter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.items[id]; ok && c.now().Before(n.Value.until) {
		return n.Value.n
	}
	return 0
}

// add counts one failure for id (kept until until) and returns the count.
func (c *attemptCounter) add(id string, until time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.items[id]; ok {
		n.Value.n++
		n.Value.until = until
		c.lru.MoveToFront(n)
		return n.Value.n
	}
	for len(c.items) >= c.max {
		back := c.lru.Back()
		c.lru.Remove(back)
		delete(c.items, back.Value.id)
	}
	n := &lrulist.Node[attempts]{Value: attempts{id: id, n: 1, until: until}}
	c.lru.PushFront(n)
	c.items[id] = n
	return 1
}
