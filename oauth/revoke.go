package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// maxJWTBytes bounds an access token presented for revocation or
// introspection.
const maxJWTBytes = 8 << 10

// parseOwnToken verifies an access token of this server (ES256 signature
// by one of its keys, typ at+jwt, issuer) and returns its claims; nil when
// it is not one. Expiry is the caller's check.
func (s *Server) parseOwnToken(ctx context.Context, raw string) *accessClaims {
	if raw == "" || len(raw) > maxJWTBytes {
		return nil
	}
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return nil
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		return nil
	}
	k, ok := s.keys.lookup(ctx, tok.Headers[0].KeyID)
	if !ok {
		return nil
	}
	var c accessClaims
	if tok.Claims(k.Key, &c) != nil || c.Issuer != s.cfg.Issuer || c.ID == "" || c.Expiry == nil {
		return nil
	}
	return &c
}

// revoke is RFC 7009. A refresh token revokes its whole family; an access
// token is revoked by its jti through Config.RevokeAccessToken. Unknown
// tokens, and tokens of other clients, are answered 200 too, so that the
// answer tells nothing.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	c := s.clientRequest(w, r, "oauth/revoke")
	if c == nil {
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	ctx := r.Context()
	if len(raw) <= maxTokenField {
		rt, err := s.cfg.Store.GetRefreshToken(ctx, digest(raw))
		switch {
		case err == nil && subtle.ConstantTimeCompare([]byte(rt.ClientID), []byte(c.ID)) == 1:
			if err := s.cfg.Store.RevokeRefreshFamily(ctx, rt.FamilyID, s.now()); err != nil {
				s.logger.Error("oauth: revoke refresh family", "err", err)
				writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token cannot be revoked right now; try again")
				return
			}
			s.audit(r, "oauth/revoke", rt.Subject, c.ID, guard.Allowed, "refresh token family revoked")
			s.revoked(w)
			return
		case err == nil:
			s.audit(r, "oauth/revoke", "", c.ID, guard.Denied, "refresh token of another client not revoked")
			s.revoked(w)
			return
		case !errors.Is(err, store.ErrNotFound):
			s.logger.Error("oauth: read refresh token", "err", err)
			writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token cannot be revoked right now; try again")
			return
		}
	}
	at := s.parseOwnToken(ctx, raw)
	switch {
	case at == nil || !s.now().Before(at.Expiry.Time()):
		// Unknown, foreign, or already expired: nothing to do.
	case subtle.ConstantTimeCompare([]byte(at.ClientID), []byte(c.ID)) != 1:
		s.audit(r, "oauth/revoke", at.Subject, c.ID, guard.Denied, "access token of another client not revoked")
	case s.cfg.RevokeAccessToken == nil:
		s.audit(r, "oauth/revoke", at.Subject, c.ID, guard.Denied, "access token "+at.ID+" not revocable (no revocation list); it expires "+at.Expiry.Time().UTC().Format(time.RFC3339))
	default:
		if err := s.cfg.RevokeAccessToken(ctx, at.ID, at.Expiry.Time()); err != nil {
			s.logger.Error("oauth: revoke access token", "err", err)
			writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token cannot be revoked right now; try again")
			return
		}
		s.audit(r, "oauth/revoke", at.Subject, c.ID, guard.Allowed, "access token "+at.ID+" revoked")
	}
	s.revoked(w)
}

func (s *Server) revoked(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// introspect is RFC 7662, for confidential clients and the tokens issued
// to them: access tokens (signature, expiry, revocation) and refresh
// tokens (current, unrevoked, unexpired). Anything else is
// {"active": false}.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	if e := readForm(r); e != nil {
		writeOAuthError(w, e.status, e.code, e.description)
		return
	}
	c, err := s.authenticateClient(r)
	if err != nil || c.TokenEndpointAuthMethod == "none" {
		s.audit(r, "oauth/introspect", "", "", guard.AuthFailed, "client authentication failed (introspection needs a confidential client)")
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "introspection needs a confidential client's credentials")
		return
	}
	ctx := r.Context()
	raw := r.PostForm.Get("token")
	now := s.now()
	inactive := map[string]any{"active": false}
	if at := s.parseOwnToken(ctx, raw); at != nil {
		if subtle.ConstantTimeCompare([]byte(at.ClientID), []byte(c.ID)) != 1 || !now.Before(at.Expiry.Time()) ||
			(at.NotBefore != nil && now.Add(time.Minute).Before(at.NotBefore.Time())) {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		if s.cfg.AccessTokenRevoked != nil {
			revoked, err := s.cfg.AccessTokenRevoked(ctx, at.ID)
			if err != nil {
				s.logger.Error("oauth: revocation check", "err", err)
				writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "revocation cannot be checked right now; try again")
				return
			}
			if revoked {
				writeJSON(w, http.StatusOK, inactive)
				return
			}
		}
		resp := map[string]any{
			"active": true, "token_type": "Bearer", "iss": at.Issuer, "sub": at.Subject, "aud": at.Audience,
			"client_id": at.ClientID, "scope": at.Scope, "roles": at.Roles, "jti": at.ID,
			"exp": at.Expiry.Time().Unix(), "iat": at.IssuedAt.Time().Unix(),
		}
		if at.NotBefore != nil {
			resp["nbf"] = at.NotBefore.Time().Unix()
		}
		if at.AuthTime != 0 {
			resp["auth_time"] = at.AuthTime
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	if raw != "" && len(raw) <= maxTokenField {
		rt, err := s.cfg.Store.GetRefreshToken(ctx, digest(raw))
		if err == nil && subtle.ConstantTimeCompare([]byte(rt.ClientID), []byte(c.ID)) == 1 &&
			rt.UsedAt.IsZero() && rt.RevokedAt.IsZero() && now.Before(rt.ExpiresAt) {
			writeJSON(w, http.StatusOK, map[string]any{
				"active": true, "token_type": "refresh_token", "iss": s.cfg.Issuer, "sub": rt.Subject, "aud": rt.Resource,
				"client_id": rt.ClientID, "scope": strings.Join(rt.Scopes, " "), "exp": rt.ExpiresAt.Unix(), "iat": rt.CreatedAt.Unix(),
			})
			return
		}
	}
	writeJSON(w, http.StatusOK, inactive)
}
