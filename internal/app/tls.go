package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/mcpguard/mcpguard/authn/mtls"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/internal/tlsx"
)

// setupTLS loads server.tls, watches its files (and SIGHUP, through hup)
// for reloads, and configures g for mutual TLS. It returns nil when HTTPS
// is not configured.
func setupTLS(ctx context.Context, cfg *config.Config, g *guard.Guard, hup *hupReloader, logger *slog.Logger) (*tls.Config, error) {
	t := cfg.Server.TLS
	if !t.Enabled() {
		return nil, nil
	}
	if t.ClientCA != "" && t.ClientAuth == "" {
		t.ClientAuth = string(guard.CertOrToken)
	}
	switch mode := guard.ClientCertMode(t.ClientAuth); {
	case t.ClientCA == "" && mode != guard.CertIgnored:
		return nil, fmt.Errorf("server.tls.client_auth %q needs a client CA (--client-ca or server.tls.client_ca)", t.ClientAuth)
	case mode != guard.CertIgnored && mode != guard.CertOnly && mode != guard.CertAndToken && mode != guard.CertOrToken:
		return nil, fmt.Errorf("server.tls.client_auth must be mtls, mtls+token or either, not %q", t.ClientAuth)
	}
	mode := guard.ClientCertMode(t.ClientAuth)
	r, err := tlsx.New(tlsx.Files{
		Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA,
		RequireClientCert: mode == guard.CertOnly || mode == guard.CertAndToken,
	})
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	if t.ClientCA != "" {
		mc := mtls.Config{PinnedFingerprints: t.PinnedFingerprints}
		for _, id := range t.Identities {
			mc.Identities = append(mc.Identities, mtls.Identity{
				Subject: id.Subject, Roles: id.Roles, CommonName: id.CommonName,
				DNSName: id.DNSName, URI: id.URI, Fingerprint: id.Fingerprint,
			})
		}
		a, err := mtls.New(mc)
		if err != nil {
			return nil, fmt.Errorf("server.tls: %w", err)
		}
		g.HTTP.ClientCerts, g.HTTP.ClientCertMode = a, mode
	}
	go r.Watch(ctx, t.ReloadInterval, logger)
	hup.Add("TLS certificates", r.Reload)
	return r.Config(), nil
}

// hostAllowList is the Host header values the listener answers besides
// loopback names: server.allowed_hosts, public_url's host and the
// listener's own host. check is false when the listener is on all
// interfaces with neither public_url nor allowed_hosts set: the names
// clients use are unknown then.
func hostAllowList(cfg *config.Config, addr string) (hosts []string, check bool) {
	hosts = append(hosts, cfg.Server.AllowedHosts...)
	if cfg.Server.PublicURL != "" {
		if u, err := url.Parse(cfg.Server.PublicURL); err == nil {
			hosts = append(hosts, u.Host)
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return hosts, len(hosts) > 0
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return hosts, len(hosts) > 0
	}
	return append(hosts, host), true
}
