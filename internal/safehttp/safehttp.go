// Package safehttp fetches URLs that an untrusted party chose (a client's
// metadata document URL, say) without letting them reach what only the
// server can reach (server-side request forgery).
//
// The check is made on the address actually dialed, in the dialer's
// Control hook, after DNS resolution: neither a literal IP nor a DNS name
// (not even one whose answer changes between lookups, "DNS rebinding") can
// point a request at loopback, private, link-local, carrier-grade NAT or
// other non-public addresses, including their IPv4-mapped IPv6 forms. No
// proxy is used (a proxy would dial on the client's behalf, unchecked),
// redirects are not followed unless asked for (and then only https to
// https, each hop dialed through the same check), and bodies are bounded.
package safehttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

// ErrBodyTooLarge is returned (wrapped) when a response body exceeds the
// bound it is read with.
var ErrBodyTooLarge = errors.New("safehttp: response body too large")

// Options configure NewClient.
type Options struct {
	// AllowPrivate permits loopback, private and other non-public
	// destinations: for tests, and for deployments that deliberately fetch
	// from an internal network.
	AllowPrivate bool
	// Timeout bounds a whole request, connection and body included. Zero
	// means 5 seconds.
	Timeout time.Duration
	// MaxBodyBytes, when positive, bounds every response body: reading past
	// it fails with ErrBodyTooLarge instead of returning more.
	MaxBodyBytes int64
	// MaxRedirects is how many redirects are followed, at most 3; only
	// https to https. Zero (the default) follows none: the 3xx response is
	// returned as it is.
	MaxRedirects int
	// RootCAs, when set, replaces the system's trusted roots (tests, or a
	// private PKI).
	RootCAs *x509.CertPool
}

// blocked lists the non-public ranges IsPublic refuses beyond what
// netip.Addr's own predicates (loopback, RFC 1918 and fc00::/7, link-local,
// multicast, unspecified) cover.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 can reach private IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/32"),       // Teredo embeds an IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4 embeds an IPv4 address
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// IsPublic reports whether addr is a public unicast address. IPv4-mapped
// IPv6 addresses (::ffff:10.0.0.1) are judged as the IPv4 address they
// carry.
func IsPublic(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// checkDial is the dialer's Control hook: address is the IP and port about
// to be connected to, after name resolution.
func checkDial(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !IsPublic(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	return nil
}

// NewTransport returns the transport of [NewClient]: it refuses
// non-public destinations (unless o.AllowPrivate), checked on the address
// actually dialed, uses no proxy (a proxy would dial on our behalf,
// unchecked), and bounds handshakes, headers and (with o.MaxBodyBytes)
// bodies.
func NewTransport(o Options) http.RoundTripper {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	dialer := &net.Dialer{Timeout: timeout}
	if !o.AllowPrivate {
		dialer.Control = checkDial
	}
	var rt http.RoundTripper = &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true,
	}
	if o.MaxBodyBytes > 0 {
		rt = &boundedTransport{next: rt, max: o.MaxBodyBytes}
	}
	return rt
}

// NewClient returns an HTTP client that refuses non-public destinations
// (unless o.AllowPrivate) and uses no proxy.
func NewClient(o Options) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	rt := NewTransport(o)
	maxRedirects := min(max(o.MaxRedirects, 0), 3)
	return &http.Client{
		Timeout:   timeout,
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if maxRedirects == 0 {
				return http.ErrUseLastResponse
			}
			if len(via) > maxRedirects {
				return errors.New("safehttp: too many redirects")
			}
			if req.URL.Scheme != "https" || via[0].URL.Scheme != "https" {
				return errors.New("safehttp: only https to https redirects are followed")
			}
			return nil
		},
	}
}

// boundedTransport makes every response body fail once it exceeds max.
type boundedTransport struct {
	next http.RoundTripper
	max  int64
}

func (t *boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrBodyTooLarge, resp.ContentLength, t.max)
	}
	resp.Body = &boundedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte would exceed the bound: is there one?
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }

// ReadBody reads at most max bytes of resp's body; a longer body is an
// error wrapping ErrBodyTooLarge rather than silently cut.
func ReadBody(resp *http.Response, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		if errors.Is(err, ErrBodyTooLarge) {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, max)
		}
		return nil, fmt.Errorf("safehttp: read body: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, max)
	}
	return b, nil
}

// Get fetches url with ctx, sending accept as the Accept header, and
// returns the body (at most max bytes) and the headers of a 200 response.
// Any other status is an error.
func Get(ctx context.Context, c *http.Client, url, accept string, max int64) ([]byte, http.Header, error) {
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
		return nil, nil, fmt.Errorf("safehttp: the server answered HTTP %d", resp.StatusCode)
	}
	b, err := ReadBody(resp, max)
	if err != nil {
		return nil, nil, err
	}
	return b, resp.Header, nil
}
