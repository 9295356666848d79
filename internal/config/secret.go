package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"strings"

	"github.com/mcpguard/mcpguard/internal/fsx"
)

// maxRefFileBytes caps how much Resolve reads from a file: keys and
// secrets are small, and a reference to something huge is a mistake.
const maxRefFileBytes = 1 << 20

// envName matches a valid environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretName matches the name of a secret in mcpguard's secret store.
var secretName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// parseRef splits a reference into its scheme ("env" or "file") and target,
// reporting whether it is well-formed.
func parseRef(s string) (scheme, target string, ok bool) {
	switch {
	case strings.HasPrefix(s, "env:"):
		target = strings.TrimPrefix(s, "env:")
		return "env", target, envName.MatchString(target)
	case strings.HasPrefix(s, "file:"):
		target = strings.TrimPrefix(s, "file:")
		return "file", target, target != ""
	case strings.HasPrefix(s, "secret:"):
		target = strings.TrimPrefix(s, "secret:")
		return "secret", target, secretName.MatchString(target)
	}
	return "", "", false
}

// Resolver resolves references: env:NAME from Env (nil: the process
// environment), file:/path from the file system, and secret:NAME from
// mcpguard's encrypted secret store through Secret (nil: secret:
// references are refused with an explanation).
type Resolver struct {
	Env    func(string) (string, bool)
	Secret func(name string) ([]byte, error)
}

// SecretRef refers to a secret without containing it: "env:NAME" (the
// value of environment variable NAME), "file:/path" (the contents of a
// file readable only by its owner; a relative path is relative to the
// working directory) or "secret:NAME" (a secret in mcpguard's encrypted
// store, `mcpguard secrets set NAME`). Its String, GoString, text and log forms show only
// the reference, and redact it entirely if it is not a well-formed
// reference (and so might be an inline secret).
type SecretRef string

// Valid reports whether s is a well-formed env:NAME or file:PATH
// reference.
func (s SecretRef) Valid() bool {
	_, _, ok := parseRef(string(s))
	return ok
}

// String returns the reference itself ("env:NAME", "file:/path"), never the
// secret; a malformed reference is shown as "[REDACTED]".
func (s SecretRef) String() string {
	switch {
	case s == "":
		return ""
	case s.Valid():
		return string(s)
	default:
		return "[REDACTED]"
	}
}

// GoString is String, so %#v does not reveal an inline secret either.
func (s SecretRef) GoString() string { return s.String() }

// MarshalText is String, so encoders (JSON, YAML) do not reveal an inline
// secret either.
func (s SecretRef) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue is String, for log/slog.
func (s SecretRef) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Resolve returns the secret s refers to. env looks up environment
// variables (nil means os.LookupEnv). A file must be a regular file not
// accessible by group or others (chmod 600); trailing newlines are
// trimmed. An unset or empty variable or an empty file is an error. Errors
// name the variable or path, never the secret.
func (s SecretRef) Resolve(env func(string) (string, bool)) ([]byte, error) {
	return s.ResolveWith(Resolver{Env: env})
}

// ResolveWith is Resolve with secret:NAME references too.
func (s SecretRef) ResolveWith(r Resolver) ([]byte, error) {
	return resolve(string(s), "secret", r, true)
}

// Ref refers to a value that is not secret, such as a PEM public key,
// with the same syntax as SecretRef: "env:NAME" or "file:/path".
type Ref string

// Valid reports whether r is a well-formed env:NAME or file:PATH
// reference.
func (r Ref) Valid() bool {
	_, _, ok := parseRef(string(r))
	return ok
}

// String returns the reference itself.
func (r Ref) String() string { return string(r) }

// Resolve returns the value r refers to, like SecretRef.Resolve but
// without the file permission check. env nil means os.LookupEnv.
func (r Ref) Resolve(env func(string) (string, bool)) ([]byte, error) {
	return r.ResolveWith(Resolver{Env: env})
}

// ResolveWith is Resolve with secret:NAME references too.
func (r Ref) ResolveWith(res Resolver) ([]byte, error) {
	return resolve(string(r), "reference", res, false)
}

func resolve(ref, what string, r Resolver, private bool) ([]byte, error) {
	scheme, target, ok := parseRef(ref)
	if !ok {
		return nil, fmt.Errorf("config: %s is not a reference; use env:NAME, file:/path or secret:NAME", what)
	}
	env := r.Env
	switch scheme {
	case "secret":
		if r.Secret == nil {
			return nil, fmt.Errorf("config: %s secret:%s: the secret store is not available here (set the master key, MCPGUARD_MASTER_KEY, and run this within mcpguard serve)", what, target)
		}
		v, err := r.Secret(target)
		if err != nil {
			return nil, fmt.Errorf("config: %s secret:%s: %w", what, target, err)
		}
		return v, nil
	case "env":
		if env == nil {
			env = os.LookupEnv
		}
		v, ok := env(target)
		if !ok {
			return nil, fmt.Errorf("config: %s env:%s: environment variable %s is not set", what, target, target)
		}
		if v == "" {
			return nil, fmt.Errorf("config: %s env:%s: environment variable %s is empty", what, target, target)
		}
		return []byte(v), nil
	}
	data, err := readRefFile(target, private)
	if err != nil {
		return nil, fmt.Errorf("config: %s file:%s: %w", what, target, err)
	}
	return data, nil
}

// readRefFile reads a referenced file, refusing one that group or others
// can access when private is set. The permission check uses the opened
// file, so the file checked is the file read.
func readRefFile(name string, private bool) ([]byte, error) {
	data, err := fsx.ReadRegular(name, maxRefFileBytes, func(fi fs.FileInfo) error {
		if perm := fi.Mode().Perm(); private && runtime.GOOS != "windows" && perm&0o077 != 0 {
			return fmt.Errorf("file is accessible by group or others (mode %04o); restrict it with: chmod 600 %s", perm, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	data = bytes.TrimRight(data, "\r\n")
	if len(data) == 0 {
		return nil, errors.New("file is empty")
	}
	return data, nil
}
