package oauth

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
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

// pageData is what the sign-in pages show.
type pageData struct {
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
// stylesheet and nothing else; formTarget, when set, is the client's
// redirect URI, whose origin must be allowed as a form action because the
// form's response redirects there and browsers apply form-action to
// redirects.
func render(w http.ResponseWriter, status int, d pageData, formTarget string) {
	formAction := "'self'"
	if u, err := url.Parse(formTarget); err == nil && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the pages' own form posts, which the Origin check
	// must refuse. Nothing is sent to other origins either way.
	h.Set("Referrer-Policy", "same-origin")
	var buf bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&buf, "page", d); err != nil {
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
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
func (s *Server) storeTxn(w http.ResponseWriter, r *http.Request, t *txn) bool {
	v, err := s.sealer.seal(purposeTxn, t, s.now().Add(txnTTL))
	if err != nil {
		s.logger.Error("oauth: seal transaction", "err", err)
		s.errorPage(w, r, http.StatusBadRequest, "The request is too large.")
		return false
	}
	s.setCookie(w, "mcpguard_oauth_txn", v, txnTTL)
	return true
}

func (s *Server) base(t *txn) pageData {
	return pageData{Client: t.ClientName, ClientID: t.ClientID, RedirectHost: redirectHost(t.RedirectURI), User: t.User, CSRF: t.CSRF, LoopbackOnly: t.LoopbackCID}
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, t *txn, msg string) {
	if !s.storeTxn(w, r, t) {
		return
	}
	d := s.base(t)
	d.Kind, d.Title, d.Error = "login", "Sign in to mcpguard", msg
	status := http.StatusOK
	if msg != "" {
		status = http.StatusUnauthorized
	}
	render(w, status, d, t.RedirectURI)
}

func (s *Server) showMFA(w http.ResponseWriter, r *http.Request, t *txn, msg string) {
	if !s.storeTxn(w, r, t) {
		return
	}
	d := s.base(t)
	d.Kind, d.Title, d.Error = "mfa", "Two-factor authentication", msg
	status := http.StatusOK
	if msg != "" {
		status = http.StatusUnauthorized
	}
	render(w, status, d, t.RedirectURI)
}

func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, t *txn, granted []string) {
	if !s.storeTxn(w, r, t) {
		return
	}
	d := s.base(t)
	d.Kind, d.Title = "consent", "Allow access?"
	for _, name := range granted {
		d.Scopes = append(d.Scopes, s.scopes[name])
	}
	render(w, http.StatusOK, d, t.RedirectURI)
}

func (s *Server) errorPage(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	render(w, status, pageData{Kind: "error", Title: "Sign-in problem", Error: msg}, "")
}
