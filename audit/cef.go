package audit

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/guard"
)

// CEF exports audit records as ArcSight Common Event Format lines, for a
// SIEM. Its zero value is usable.
type CEF struct {
	// Version is the device version in the CEF header; empty means the
	// version of the running binary's main module, or "0".
	Version string
}

// ExportCEF writes recs to w as CEF lines, with the version of the running
// binary; see [CEF.Export].
func ExportCEF(w io.Writer, recs []guard.Record) error {
	return CEF{}.Export(w, recs)
}

// Export writes one line to w for each record:
//
//	CEF:0|mcpguard|mcpguard|<version>|<decision>|<method> <target>|<severity>|<extension>
//
// The severity is 3 for ALLOWED (4 when the tool failed), 5 for
// RATE_LIMITED, 6 for DENIED, 7 for AUTH_FAILED and 8 for ERROR. The
// extension holds rt (the time in epoch milliseconds), act (the decision),
// suser, src (when the client address is an IP), reason, msg (the error),
// externalId (the request id), app (the transport), and cs1–cs6 with their
// labels for the session, roles, required roles, policies, key id and
// arguments digest, and cn1 for the duration in nanoseconds.
//
// Values are escaped as CEF requires: in the header a backslash and a pipe
// are preceded by a backslash; in the extension a backslash and an equals
// sign are, and a newline or carriage return becomes \n or \r. Other
// control and invisible formatting characters (such as bidirectional
// overrides) are written as the text \uXXXX, and invalid UTF-8 as U+FFFD, so
// a value can neither add a line nor forge a field.
func (c CEF) Export(w io.Writer, recs []guard.Record) error {
	version := c.Version
	if version == "" {
		version = "0"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
	}
	bw := bufio.NewWriter(w)
	var b []byte
	for i := range recs {
		b = appendCEF(b[:0], version, &recs[i])
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("audit: write CEF: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit: write CEF: %w", err)
	}
	return nil
}

// cefSeverity maps a decision to a CEF severity (0–10).
func cefSeverity(r *guard.Record) int {
	switch r.Decision {
	case guard.Allowed:
		if r.ToolError {
			return 4
		}
		return 3
	case guard.RateLimited:
		return 5
	case guard.Denied:
		return 6
	case guard.AuthFailed:
		return 7
	case guard.Failed:
		return 8
	}
	return 5
}

func appendCEF(b []byte, version string, r *guard.Record) []byte {
	name := strings.TrimSpace(r.Method + " " + r.Target)
	if name == "" {
		name = string(r.Decision)
	}
	b = append(b, "CEF:0|mcpguard|mcpguard|"...)
	b = appendCEFHeader(b, version)
	b = append(b, '|')
	b = appendCEFHeader(b, string(r.Decision))
	b = append(b, '|')
	b = appendCEFHeader(b, name)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(cefSeverity(r)), 10)
	b = append(b, '|')

	first := true
	ext := func(key, v string) {
		if v == "" {
			return
		}
		if !first {
			b = append(b, ' ')
		}
		first = false
		b = append(b, key...)
		b = append(b, '=')
		b = appendCEFValue(b, v)
	}
	if !r.Time.IsZero() {
		ext("rt", strconv.FormatInt(r.Time.UnixMilli(), 10))
	}
	ext("act", string(r.Decision))
	ext("suser", r.Subject)
	if addr, err := netip.ParseAddr(r.ClientAddr); err == nil {
		ext("src", addr.String())
	} else if ap, err := netip.ParseAddrPort(r.ClientAddr); err == nil {
		ext("src", ap.Addr().String())
	}
	ext("reason", r.Reason)
	ext("msg", r.Error)
	ext("externalId", r.RequestID)
	ext("app", r.Transport)
	label := func(n int, name, v string) {
		if v != "" {
			k := "cs" + strconv.Itoa(n)
			ext(k+"Label", name)
			ext(k, v)
		}
	}
	label(1, "sessionId", r.SessionID)
	label(2, "roles", strings.Join(r.Roles, ","))
	label(3, "requiredRoles", strings.Join(r.RequiredRoles, ","))
	label(4, "policies", strings.Join(r.Policies, ","))
	label(5, "keyId", r.KeyID)
	label(6, "argsSha256", r.ArgsDigest)
	if r.Duration != 0 {
		ext("cn1Label", "durationNs")
		ext("cn1", strconv.FormatInt(int64(r.Duration), 10))
	}
	return append(b, '\n')
}

// appendCEFHeader appends s escaped for a CEF header field.
func appendCEFHeader(b []byte, s string) []byte {
	return appendCEFEscaped(b, s, true)
}

// appendCEFValue appends s escaped for a CEF extension value.
func appendCEFValue(b []byte, s string) []byte {
	return appendCEFEscaped(b, s, false)
}

func appendCEFEscaped(b []byte, s string, header bool) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == '|' && header:
			b = append(b, `\|`...)
		case r == '=' && !header:
			b = append(b, `\=`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == utf8.RuneError && size == 1:
			b = utf8.AppendRune(b, utf8.RuneError)
		case r < 0x20 || r == 0x7f || mustEscape(r) || r == 0x2028 || r == 0x2029:
			b = appendU(b, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}
