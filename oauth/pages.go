package oauth

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"time"
)

//go:embed templates/page.html templates/style.css
var assets embed.FS

var pageTemplate = template.Must(template.ParseFS(assets, "templates/page.html"))

var styleCSS = func() []byte {
	b, err := assets.ReadFile("templates/style.css")
	if err != nil {
		panic(err) // embedded at build time: cannot fail
	}
	return b
}()

// pageData is what the sign-in pages show. html/template escapes every
// field for its context.
type pageData struct {
	Base                     string // the issuer's path, for links and form actions
	Kind, Title, Error       string
	Client, ClientID         string
	RedirectHost, User, CSRF string
	LoopbackOnly             bool
	Scopes                   []Scope
}

func serveCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(styleCSS)
}

// render writes a page. Its Content-Security-Policy allows the page's own
// stylesheet and nothing else. formTarget, when set, is the client's
// validated redirect URI: its origin is allowed as a form action, because
// the form's response may redirect there (303) and browsers apply
// form-action to the redirects a form submission follows.
func render(w http.ResponseWriter, status int, d pageData, formTarget string) {
	formAction := "'self'"
	if o := originOf(formTarget); o != "" {
		formAction += " " + o
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with the pages' own form posts, which the Origin
	// check must refuse. Nothing is sent to other origins either way.
	h.Set("Referrer-Policy", "same-origin")
	var buf bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&buf, "page", d); err != nil {
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// originOf returns scheme://host of an absolute URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// storeTxn seals t into the transaction cookie; false when it cannot (the
// response is then an error page).
func (s *Server) storeTxn(w http.ResponseWriter, t *txn) bool {
	exp := time.Unix(t.Expires, 0)
	v, err := s.sealer.seal(purposeTxn, t, exp)
	if err != nil {
		s.logger.Warn("oauth: sign-in transaction too large for a cookie", "client_id", t.ClientID)
		s.errorPage(w, http.StatusBadRequest, "The authorization request is too large. Ask the application's developer to shorten its state or redirect URI.")
		return false
	}
	s.setCookie(w, cookieTxn, v, exp.Sub(s.now()))
	return true
}

func (s *Server) pageFor(t *txn) pageData {
	return pageData{
		Base: s.prefix, Client: t.ClientName, ClientID: t.ClientID, RedirectHost: redirectHost(t.RedirectURI),
		User: t.User, CSRF: t.CSRF, LoopbackOnly: t.LoopbackCIMD,
	}
}

func (s *Server) showLogin(w http.ResponseWriter, t *txn, msg string) {
	s.showCredentialForm(w, t, "login", "Sign in to mcpguard", msg)
}

func (s *Server) showMFA(w http.ResponseWriter, t *txn, msg string) {
	s.showCredentialForm(w, t, "mfa", "Two-factor authentication", msg)
}

// showCredentialForm renders the password or MFA form; msg, when set, says
// why the last attempt failed (401).
func (s *Server) showCredentialForm(w http.ResponseWriter, t *txn, kind, title, msg string) {
	if !s.storeTxn(w, t) {
		return
	}
	d := s.pageFor(t)
	d.Kind, d.Title, d.Error = kind, title, msg
	status := http.StatusOK
	if msg != "" {
		status = http.StatusUnauthorized
	}
	render(w, status, d, t.RedirectURI)
}

func (s *Server) showConsent(w http.ResponseWriter, t *txn, granted []string) {
	if !s.storeTxn(w, t) {
		return
	}
	d := s.pageFor(t)
	d.Kind, d.Title = "consent", "Allow access?"
	for _, name := range granted {
		d.Scopes = append(d.Scopes, s.scopes[name])
	}
	render(w, http.StatusOK, d, t.RedirectURI)
}

// errorPage shows an error that must not go back to the client (its
// identity or redirect URI is not established, or the sign-in state is
// not trustworthy). msg is fixed text or sanitized input, never a secret.
func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	render(w, status, pageData{Base: s.prefix, Kind: "error", Title: "Sign-in problem", Error: msg}, "")
}
