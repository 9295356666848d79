// Package netx holds small network helpers shared by mcpguard's HTTP
// handlers.
package netx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// IsLoopbackHost reports whether host (a Host header or an address, with or
// without a port, IPv6 in brackets or not) names this machine: "localhost"
// or a loopback IP.
func IsLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PeerIP is the request's peer address without its port.
func PeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// SourceKey is the key under which failures from addr (an IP without port)
// are counted: the IPv4 address, or the IPv6 /64, since one host commonly
// holds a whole /64 and could otherwise rotate addresses to escape a
// lockout.
func SourceKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return addr
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// ShutdownGrace bounds how long Serve waits for requests in flight once
// its context is done.
const ShutdownGrace = 10 * time.Second

// Serve serves srv on ln until ctx is done, then shuts it down, giving
// requests in flight ShutdownGrace to finish before closing what remains.
// A server that stops on its own is an error.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		srv.Close()
	}
	return nil
}

// LimitListener returns a listener that holds at most n connections open at
// once; further connections wait in the kernel's backlog until one closes.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// hostName is host without its port and brackets, lower case.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// AllowHosts returns middleware that answers 403 to a request whose Host
// header names neither one of hosts (names or IPs, ports ignored) nor a
// loopback name. It defeats DNS rebinding: a page on an attacker's domain
// that resolves to this server still sends the attacker's Host.
func AllowHosts(hosts []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range hosts {
		allowed[hostName(h)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[hostName(r.Host)] && !IsLoopbackHost(r.Host) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			http.Error(w, "forbidden: this Host is not served here (add it to server.allowed_hosts)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
