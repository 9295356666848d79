package oauth

import (
	"encoding/json"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// clientAuthMethods are the client authentication methods of the token and
// revocation endpoints.
var clientAuthMethods = []string{"none", "client_secret_basic", "client_secret_post"}

// Metadata is the authorization server's metadata (RFC 8414), as served at
// /.well-known/oauth-authorization-server.
func (s *Server) Metadata() *oauthex.AuthServerMeta {
	base := s.cfg.Issuer
	m := &oauthex.AuthServerMeta{
		Issuer:                                     s.cfg.Issuer,
		AuthorizationEndpoint:                      base + "/oauth/authorize",
		TokenEndpoint:                              base + "/oauth/token",
		JWKSURI:                                    base + "/.well-known/jwks.json",
		RevocationEndpoint:                         base + "/oauth/revoke",
		IntrospectionEndpoint:                      base + "/oauth/introspect",
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token", "client_credentials"},
		TokenEndpointAuthMethodsSupported:          clientAuthMethods,
		RevocationEndpointAuthMethodsSupported:     clientAuthMethods,
		IntrospectionEndpointAuthMethodsSupported:  []string{"client_secret_basic", "client_secret_post"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		ClientIDMetadataDocumentSupported:          s.cfg.ClientIDMetadataDocuments,
		AuthorizationResponseIssParameterSupported: true,
	}
	for _, sc := range s.cfg.Scopes {
		m.ScopesSupported = append(m.ScopesSupported, sc.Name)
	}
	m.ScopesSupported = append(m.ScopesSupported, ScopeMFA)
	if s.cfg.DynamicRegistration {
		m.RegistrationEndpoint = base + "/oauth/register"
	}
	return m
}

// serveMetadata serves the RFC 8414 document.
func (s *Server) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeDocument(w, s.Metadata())
}

// serveOpenIDConfiguration serves the same document for clients that
// discover with OpenID Connect Discovery, plus the OIDC fields that hold.
// No id_token is issued, and no response type but "code" is advertised.
func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{}
	b, err := json.Marshal(s.Metadata())
	if err == nil {
		err = json.Unmarshal(b, &doc)
	}
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	doc["subject_types_supported"] = []string{"public"}
	doc["id_token_signing_alg_values_supported"] = []string{"ES256"}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeDocument(w, doc)
}

// writeDocument writes a public JSON document that any origin may read.
func writeDocument(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "document unavailable", http.StatusInternalServerError)
		return
	}
	cors(w)
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// writeJSON writes a JSON response that must never be cached (tokens,
// introspection, registration).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeOAuthError writes an RFC 6749 §5.2 error. The description is fixed
// text or sanitized input: never a secret.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpguard", charset="UTF-8"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}
