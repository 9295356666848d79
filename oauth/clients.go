package oauth

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safetext"
	"github.com/mcpguard/mcpguard/store"
)

// client is a client as the server uses it: stored, or read from a Client
// ID Metadata Document.
type client struct {
	store.OAuthClient
	metadataDocument bool
}

// Client metadata bounds.
const (
	maxClientID     = 1024
	maxRedirectURIs = 10
	maxRedirectURI  = 1024
	maxClientName   = 200 // characters
	maxSecret       = 512
)

// lookupClient finds a client by id: a metadata-document URL, or a stored
// client. Its errors are safe to show.
func (s *Server) lookupClient(ctx context.Context, id string) (*client, error) {
	if id == "" {
		return nil, errors.New("client_id is missing")
	}
	if len(id) > maxClientID || !utf8.ValidString(id) {
		return nil, errors.New("client_id is too long or not text")
	}
	if strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "http://") {
		if !s.cfg.ClientIDMetadataDocuments {
			return nil, errors.New("this server does not accept URL client ids (Client ID Metadata Documents are disabled)")
		}
		return s.cimd.get(ctx, id)
	}
	c, err := s.cfg.Store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("no client is registered with this client_id")
	}
	if err != nil {
		s.logger.Error("oauth: read client", "err", err)
		return nil, errors.New("the client could not be looked up; try again later")
	}
	return &client{OAuthClient: *c}, nil
}

var errInvalidClient = errors.New("invalid_client")

// authenticateClient authenticates the client of a token, revocation or
// introspection request (r's form already parsed): client_secret_basic
// (HTTP Basic, RFC 6749 §2.3.1) or client_secret_post for confidential
// clients, whichever they use (both carry the same secret); the bare
// client_id for public ones, which must present no secret. Secrets are
// compared by SHA-256 digest in constant time.
func (s *Server) authenticateClient(r *http.Request) (*client, error) {
	id, secret, basic := r.BasicAuth()
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id) // RFC 6749 §2.3.1: form-encoded first
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || formSecret != "" || (formID != "" && formID != id) {
			return nil, errInvalidClient // malformed, or two methods at once
		}
	} else {
		id, secret = formID, formSecret
	}
	if id == "" || len(secret) > maxSecret {
		return nil, errInvalidClient
	}
	c, err := s.lookupClient(r.Context(), id)
	if err != nil {
		return nil, errInvalidClient
	}
	switch c.TokenEndpointAuthMethod {
	case "none":
		// A public client only names itself; HTTP Basic with an empty
		// password does the same (x/oauth2's auto-detection sends it).
		if secret != "" {
			return nil, errInvalidClient
		}
	case "client_secret_basic", "client_secret_post":
		if secret == "" || len(c.SecretHash) == 0 || subtle.ConstantTimeCompare(digest(secret), c.SecretHash) != 1 {
			return nil, errInvalidClient
		}
	default:
		return nil, errInvalidClient
	}
	return c, nil
}

// registration is RFC 7591 client metadata: a registration request and
// response, or a Client ID Metadata Document.
type registration struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at,omitempty"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

// metadataError is a client metadata problem, with its RFC 7591 §3.2.2
// error code.
type metadataError struct {
	code, msg string
}

func (e *metadataError) Error() string { return e.msg }

func badMetadata(format string, args ...any) error {
	return &metadataError{"invalid_client_metadata", fmt.Sprintf(format, args...)}
}

func badRedirect(format string, args ...any) error {
	return &metadataError{"invalid_redirect_uri", fmt.Sprintf(format, args...)}
}

// validateMetadata checks client metadata and fills in defaults. allowSecret
// is false for metadata documents, whose clients are public.
func (s *Server) validateMetadata(m *registration, allowSecret bool) error {
	if len(m.RedirectURIs) == 0 || len(m.RedirectURIs) > maxRedirectURIs {
		return badRedirect("between 1 and %d redirect_uris are required", maxRedirectURIs)
	}
	for _, u := range m.RedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			return badRedirect("%s", err.Error())
		}
	}
	name, err := displayName(m.ClientName)
	if err != nil {
		return err
	}
	m.ClientName = name
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	for _, g := range m.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return badMetadata("grant type %q may not be registered (authorization_code and refresh_token only)", safetext.Printable(g, 64))
		}
	}
	if !slices.Contains(m.GrantTypes, "authorization_code") {
		return badMetadata("grant_types must include authorization_code")
	}
	m.GrantTypes = slices.Compact(slices.Sorted(slices.Values(m.GrantTypes)))
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			return badMetadata(`only response type "code" is supported`)
		}
	}
	m.ResponseTypes = []string{"code"}
	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = "none"
	}
	switch m.TokenEndpointAuthMethod {
	case "none":
	case "client_secret_basic", "client_secret_post":
		if !allowSecret {
			return badMetadata("token_endpoint_auth_method must be none")
		}
	default:
		return badMetadata("token_endpoint_auth_method %q is not supported", safetext.Printable(m.TokenEndpointAuthMethod, 64))
	}
	if len(m.Scope) > maxScopeParam {
		return badMetadata("scope is too long")
	}
	for _, sc := range strings.Fields(m.Scope) {
		if _, ok := s.scopes[sc]; !ok {
			return badMetadata("unknown scope %q", safetext.Printable(sc, 64))
		}
	}
	return nil
}

// displayName checks and cleans a client_name for the consent page: at
// most maxClientName characters, with control and formatting characters
// (bidirectional overrides, zero-width characters) removed, so that a name
// cannot disguise itself.
func displayName(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", badMetadata("client_name is not valid UTF-8")
	}
	if utf8.RuneCountInString(raw) > maxClientName {
		return "", badMetadata("client_name is longer than %d characters", maxClientName)
	}
	clean := strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, raw)
	return strings.Join(strings.Fields(clean), " "), nil
}

// register is dynamic client registration (RFC 7591).
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	cors(w)
	if !s.regLimit.allow(netx.PeerIP(r), s.now()) {
		s.audit(r, "oauth/register", "", "", guard.RateLimited, "too many registrations from this address")
		w.Header().Set("Retry-After", "600")
		writeOAuthError(w, http.StatusTooManyRequests, "invalid_request", "too many client registrations from this address; try again later or ask the operator to pre-register your client")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body must be application/json")
		return
	}
	var m registration
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&m); err != nil || dec.Decode(&struct{}{}) != io.EOF {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body must be one JSON client metadata object of at most 64 KiB")
		return
	}
	if m.ClientID != "" || m.ClientSecret != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "client_id and client_secret are assigned by the server")
		return
	}
	if err := s.validateMetadata(&m, true); err != nil {
		var me *metadataError
		code := "invalid_client_metadata"
		if errors.As(err, &me) {
			code = me.code
		}
		s.audit(r, "oauth/register", "", "", guard.Denied, code+": "+err.Error())
		writeOAuthError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	// The registered scope does not bound a dynamic client: clients copy
	// the scope of the first challenge into their registration, and would
	// then be refused the larger scope a step-up challenge asks for. What a
	// token gets is bounded by the user's roles and consent instead (RFC
	// 7591 §3.2.1 lets the server replace requested metadata; the response
	// says so).
	var all []string
	for _, sc := range s.cfg.Scopes {
		all = append(all, sc.Name)
	}
	m.Scope = strings.Join(all, " ")
	c := &store.OAuthClient{
		ID: "mcpd_" + randomHex(16), Name: cmp.Or(m.ClientName, "Unnamed client"), RedirectURIs: m.RedirectURIs, GrantTypes: m.GrantTypes,
		TokenEndpointAuthMethod: m.TokenEndpointAuthMethod, Dynamic: true, CreatedAt: s.now(),
	}
	if m.TokenEndpointAuthMethod != "none" {
		m.ClientSecret, c.SecretHash = NewClientSecret()
		never := int64(0)
		m.ClientSecretExpiresAt = &never
	}
	s.regMu.Lock()
	n, err := s.cfg.Store.CountDynamicClients(r.Context())
	if err == nil && n >= s.cfg.MaxDynamicClients {
		s.regMu.Unlock()
		s.audit(r, "oauth/register", "", "", guard.Denied, "dynamic client limit reached")
		writeOAuthError(w, http.StatusForbidden, "access_denied", "this server accepts no more dynamic registrations; ask its operator to pre-register your client")
		return
	}
	if err == nil {
		err = s.cfg.Store.CreateClient(r.Context(), c)
	}
	s.regMu.Unlock()
	if err != nil {
		s.logger.Error("oauth: register client", "err", err)
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "registration is temporarily unavailable")
		return
	}
	if s.audit(r, "oauth/register", "", c.ID, guard.Allowed, "client registered: "+c.Name) != nil {
		s.cfg.Store.DeleteClient(r.Context(), c.ID)
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "registration is temporarily unavailable")
		return
	}
	m.ClientID, m.ClientIDIssuedAt, m.ClientName = c.ID, c.CreatedAt.Unix(), c.Name
	writeJSON(w, http.StatusCreated, m)
}

// NewClientSecret returns a new client secret (32 random bytes,
// base64url) and the digest the store keeps of it.
func NewClientSecret() (secret string, hash []byte) {
	secret = randomToken(32)
	return secret, digest(secret)
}
