// Package netx holds small network helpers shared by mcpguard's HTTP
// handlers.
package netx

import (
	"net"
	"strings"
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
