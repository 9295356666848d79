package netx

import (
	"net/http"
	"testing"
)

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:8080": true, "127.0.0.1": true, "127.8.9.10:1": true,
		"[::1]:80": true, "::1": true, "example.com": false, "10.0.0.1": false,
		"localhost.evil.com": false, "": false, "[::2]": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                 "192.0.2.7",
		"2001:db8:1:2:aaaa::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::9": "2001:db8:1:2::/64",
		"::ffff:192.0.2.7":          "::ffff:192.0.2.7",
		"not-an-ip":                 "not-an-ip",
	} {
		if got := SourceKey(in); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPeerIPThenSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":              "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":   "2001:db8:1:2::/64",
		"not-an-address":             "not-an-address",
	} {
		r := &http.Request{RemoteAddr: in}
		if got := SourceKey(PeerIP(r)); got != want {
			t.Errorf("SourceKey(PeerIP(%q)) = %q, want %q", in, got, want)
		}
	}
}
