// Package safehttp fetches URLs that an untrusted party chose (a client's
// metadata document URL, say) without letting them reach what only the
// server can reach: the address actually dialed, after DNS resolution, must
// be a public unicast address, so that neither a literal IP nor a DNS name
// (even one that changes between lookups) can point the request at
// loopback, private, link-local or metadata-service addresses (SSRF).
package safehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned (wrapped) when a request would connect to
// an address that is not public.
var ErrForbiddenAddress = errors.New("safehttp: destination address is not public")

// Options configure NewClient.
type Options struct {
	// AllowPrivate permits loopback and private destinations: for tests
	// and deployments that deliberately fetch from an internal network.
	AllowPrivate bool
	// Timeout bounds a whole request. Zero means 5 seconds.
	Timeout time.Duration
}

// blocked lists the non-public ranges IsPublic refuses beyond what
// netip.Addr's own predicates cover.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64 can reach private IPv4
	netip.MustParsePrefix("2001:db8::/32"), // documentation
}

// IsPublic reports whether addr is a public unicast address.
func IsPublic(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// NewClient returns an HTTP client that refuses non-public destinations
// (unless AllowPrivate), follows at most 3 redirects (each checked the same
// way, since the check is made on every connection), and uses no proxy.
func NewClient(o Options) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	dialer := &net.Dialer{
		Timeout: timeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			if o.AllowPrivate {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !IsPublic(ap.Addr()) {
				return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would dial on our behalf, unchecked
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableKeepAlives:      true,
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("safehttp: too many redirects")
			}
			if req.URL.Scheme != "https" && via[0].URL.Scheme == "https" {
				return errors.New("safehttp: redirect from https to another scheme")
			}
			return nil
		},
	}
}

// ReadBody reads at most max bytes of resp's body; a longer body is an
// error rather than silently cut.
func ReadBody(resp *http.Response, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("safehttp: read body: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("safehttp: body larger than %d bytes", max)
	}
	return b, nil
}

// Get fetches url with ctx and returns the body (at most max bytes) of a
// 200 response.
func Get(ctx context.Context, c *http.Client, url string, accept string, max int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("safehttp: %w", err)
	}
	req.Header.Set("Accept", accept)
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("safehttp: %s answered HTTP %d", url, resp.StatusCode)
	}
	b, err := ReadBody(resp, max)
	return b, resp.Header, err
}
