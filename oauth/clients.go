package oauth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safehttp"
	"github.com/mcpguard/mcpguard/store"
)

// client is a client as the server uses it: stored, or read from a Client
// ID Metadata Document.
type client struct {
	store.OAuthClient
	metadataDocument bool
}

// Registration bounds.
const (
	maxRedirectURIs = 10
	maxClientName   = 200
	maxCIMDBytes    = 16 << 10
)

// lookupClient finds a client by id: a metadata-document URL, or a stored
// client.
func (s *Server) lookupClient(ctx context.Context, id string) (*client, error) {
	if id == "" || len(id) > 2048 {
		return nil, errors.New("client_id is missing or too long")
	}
	if strings.HasPrefix(id, "https://") || (s.cfg.AllowPrivateCIMD && strings.HasPrefix(id, "http://")) {
		if !s.cfg.ClientIDMetadataDocuments {
			return nil, errors.New("this server does not accept URL client ids")
		}
		return s.cimd.get(ctx, id)
	}
	c, err := s.cfg.Store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("no such client")
	}
	if err != nil {
		return nil, fmt.Errorf("client lookup failed")
	}
	return &client{OAuthClient: *c}, nil
}

// authenticateClient authenticates the client of a token, revocation or
// introspection request: HTTP Basic or form credentials for confidential
// clients, the bare client_id for public ones. Errors are OAuth error codes.
func (s *Server) authenticateClient(r *http.Request) (*client, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, errInvalidClient
		}
		if r.PostFormValue("client_secret") != "" {
			return nil, errInvalidClient // two methods at once (RFC 6749 §2.3)
		}
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	c, err := s.lookupClient(r.Context(), id)
	if err != nil {
		return nil, errInvalidClient
	}
	switch c.TokenEndpointAuthMethod {
	case "none":
		if secret != "" || basic {
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

var errInvalidClient = errors.New("invalid_client")

// registration is an RFC 7591 request and response.
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

// validateMetadata checks the client metadata of a registration or a
// metadata document and fills in defaults.
func (s *Server) validateMetadata(m *registration, allowSecret bool) error {
	if len(m.RedirectURIs) == 0 || len(m.RedirectURIs) > maxRedirectURIs {
		return fmt.Errorf("between 1 and %d redirect_uris are required", maxRedirectURIs)
	}
	for _, u := range m.RedirectURIs {
		if len(u) > 2048 {
			return errors.New("a redirect URI is too long")
		}
		if err := checkRedirectURI(u); err != nil {
			return err
		}
	}
	if len(m.ClientName) > maxClientName {
		return fmt.Errorf("client_name is longer than %d characters", maxClientName)
	}
	m.ClientName = safeField(m.ClientName)
	if m.GrantTypes == nil {
		m.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	for _, g := range m.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return fmt.Errorf("grant type %q may not be registered (authorization_code and refresh_token only)", safeField(g))
		}
	}
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			return errors.New(`only response type "code" is supported`)
		}
	}
	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = "none"
	}
	switch m.TokenEndpointAuthMethod {
	case "none":
	case "client_secret_basic", "client_secret_post":
		if !allowSecret {
			return errors.New("token_endpoint_auth_method must be none")
		}
	default:
		return fmt.Errorf("token_endpoint_auth_method %q is not supported", safeField(m.TokenEndpointAuthMethod))
	}
	for _, sc := range strings.Fields(m.Scope) {
		if _, ok := s.scopes[sc]; !ok {
			return fmt.Errorf("unknown scope %q", safeField(sc))
		}
	}
	return nil
}

// register is dynamic client registration (RFC 7591).
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var m registration
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&m); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body must be a JSON client metadata document of at most 64 KiB")
		return
	}
	if err := s.validateMetadata(&m, true); err != nil {
		s.audit(r, "oauth/register", "", "", guard.Denied, err.Error())
		code := "invalid_client_metadata"
		if strings.Contains(err.Error(), "redirect") {
			code = "invalid_redirect_uri"
		}
		writeOAuthError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	n, err := s.cfg.Store.CountDynamicClients(r.Context())
	if err != nil {
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "registration is temporarily unavailable")
		return
	}
	if n >= s.cfg.MaxDynamicClients {
		s.audit(r, "oauth/register", "", "", guard.Denied, "dynamic client limit reached")
		writeOAuthError(w, http.StatusForbidden, "access_denied", "this server accepts no more dynamic registrations; ask its operator to pre-register your client")
		return
	}
	// The registered scope does not bound a dynamic client: clients copy
	// the scope of the first challenge into their registration, and would
	// then be refused the larger scope a step-up challenge asks for. What a
	// token gets is bounded by the user's roles and consent instead (RFC
	// 7591 §3.2.1 lets the server replace requested metadata; the response
	// says so).
	c := &store.OAuthClient{
		ID: "mcpd_" + randomHex(12), Name: m.ClientName, RedirectURIs: m.RedirectURIs, GrantTypes: m.GrantTypes,
		TokenEndpointAuthMethod: m.TokenEndpointAuthMethod, Dynamic: true, CreatedAt: s.now(),
	}
	var all []string
	for _, sc := range s.cfg.Scopes {
		all = append(all, sc.Name)
	}
	m.Scope = strings.Join(all, " ")
	if c.Name == "" {
		c.Name = "Unnamed client"
	}
	if m.TokenEndpointAuthMethod != "none" {
		m.ClientSecret = randomToken(32)
		c.SecretHash = digest(m.ClientSecret)
		zero := int64(0)
		m.ClientSecretExpiresAt = &zero
	}
	if err := s.cfg.Store.CreateClient(r.Context(), c); err != nil {
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "registration is temporarily unavailable")
		return
	}
	s.audit(r, "oauth/register", "", c.ID, guard.Allowed, "client registered: "+c.Name)
	m.ClientID, m.ClientIDIssuedAt, m.ClientName = c.ID, c.CreatedAt.Unix(), c.Name
	if m.ResponseTypes == nil {
		m.ResponseTypes = []string{"code"}
	}
	writeJSON(w, http.StatusCreated, m)
}

// cimdCache fetches and remembers Client ID Metadata Documents.
type cimdCache struct {
	client *http.Client
	now    func() time.Time
	mu     sync.Mutex
	docs   map[string]cimdEntry
	size   int
}

type cimdEntry struct {
	c     *client
	until time.Time
}

func newCIMDCache(c *http.Client, size int, now func() time.Time) *cimdCache {
	return &cimdCache{client: c, now: now, docs: map[string]cimdEntry{}, size: size}
}

// get returns the client a metadata document URL names, fetching the
// document when it is not cached or its cache time is over.
func (c *cimdCache) get(ctx context.Context, id string) (*client, error) {
	u, err := url.Parse(id)
	if err != nil || u.Host == "" || u.Path == "" || u.Path == "/" || u.Fragment != "" || u.User != nil || strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") {
		return nil, errors.New("a URL client_id must be an https URL with a path")
	}
	now := c.now()
	c.mu.Lock()
	if e, ok := c.docs[id]; ok && now.Before(e.until) {
		c.mu.Unlock()
		return e.c, nil
	}
	c.mu.Unlock()
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, hdr, err := safehttp.Get(fctx, c.client, id, "application/json", maxCIMDBytes)
	if err != nil {
		if errors.Is(err, safehttp.ErrForbiddenAddress) {
			return nil, errors.New("the client metadata document URL points at a private or loopback address")
		}
		return nil, errors.New("the client metadata document could not be fetched")
	}
	var m struct {
		registration
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errors.New("the client metadata document is not valid JSON")
	}
	if m.ClientID != id {
		return nil, errors.New("the client metadata document's client_id does not equal its URL")
	}
	if m.ClientName == "" {
		return nil, errors.New("the client metadata document has no client_name")
	}
	if m.registration.ClientSecret != "" {
		return nil, errors.New("a client metadata document may not carry a secret")
	}
	srv := &Server{scopes: map[string]Scope{}} // metadata checks that need no scopes
	m.registration.Scope = ""
	if err := srv.validateMetadata(&m.registration, false); err != nil {
		return nil, fmt.Errorf("the client metadata document is invalid: %w", err)
	}
	cl := &client{OAuthClient: store.OAuthClient{
		ID: id, Name: m.ClientName, RedirectURIs: m.RedirectURIs, GrantTypes: m.GrantTypes, TokenEndpointAuthMethod: "none",
	}, metadataDocument: true}
	ttl := cacheTTL(hdr.Get("Cache-Control"))
	c.mu.Lock()
	if len(c.docs) >= c.size {
		// Bounded: drop expired documents, then any (a map's order is
		// random, so no client can pin its own entry).
		for k, e := range c.docs {
			if !now.Before(e.until) || len(c.docs) >= c.size {
				delete(c.docs, k)
			}
		}
	}
	c.docs[id] = cimdEntry{c: cl, until: now.Add(ttl)}
	c.mu.Unlock()
	return cl, nil
}

// cacheTTL reads max-age from Cache-Control, clamped to [1 minute, 24
// hours]; 5 minutes without one.
func cacheTTL(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		if strings.EqualFold(name, "max-age") {
			var secs int
			if _, err := fmt.Sscanf(val, "%d", &secs); err == nil {
				return min(max(time.Duration(secs)*time.Second, time.Minute), 24*time.Hour)
			}
		}
		if strings.EqualFold(name, "no-store") || strings.EqualFold(name, "no-cache") {
			return time.Minute
		}
	}
	return 5 * time.Minute
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeOAuthError writes an RFC 6749 §5.2 error.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	if code == "invalid_client" && status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpguard"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}
