package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Isolation says how an upstream's connections are shared between callers.
type Isolation string

// Isolation modes.
const (
	// Shared is one connection (one process) for every caller.
	Shared Isolation = "shared"
	// PerUser is one connection (one process) per principal, keyed by
	// guard.Principal.ID, so that no state leaks between users.
	PerUser Isolation = "per-user"
)

// PinMode says what happens when an upstream tool's definition differs from
// the one pinned.
type PinMode string

// Pin modes.
const (
	// PinBlock hides a changed tool from tools/list and refuses calls to it
	// until it is pinned again (`mcpguard tools pin`).
	PinBlock PinMode = "block"
	// PinFlag lets a changed tool through but audits and logs the change.
	PinFlag PinMode = "flag"
	// PinOff records nothing and checks nothing.
	PinOff PinMode = "off"
)

// Defaults for the bounds of an [Upstream].
const (
	DefaultTimeout          = 60 * time.Second
	DefaultMaxResponseBytes = 4 << 20
	DefaultSeparator        = "__"
	DefaultMaxConnections   = 64
)

// Upstream describes one MCP server to put behind the gateway. Exactly one
// of Command and URL is set. Values here are already resolved: the
// configuration layer turns env:/file:/secret: references into them.
type Upstream struct {
	// Name identifies the upstream in logs, status and audit records.
	Name string
	// Prefix is prepended, with the separator, to the names of the
	// upstream's tools and prompts. Empty exposes the names unchanged.
	Prefix string
	// Command is the program and its arguments for a stdio upstream.
	Command []string
	// Env is added to the minimal environment a stdio upstream runs with.
	Env map[string]string
	// Dir is the working directory of a stdio upstream ("" inherits).
	Dir string
	// URL is the streamable-HTTP endpoint of a remote upstream.
	URL string
	// Headers are sent on every request to a remote upstream (its own
	// credentials, for example). The caller's headers never are.
	Headers map[string]string
	// HTTPClient, if set, is used for a remote upstream (tests, custom
	// TLS). Its Transport is wrapped to add Headers and bound responses.
	HTTPClient *http.Client
	// Isolation is Shared (default) or PerUser.
	Isolation Isolation
	// Timeout bounds connecting and every forwarded request. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes bounds every message the upstream sends. Zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Pinning is PinBlock (default when a PinStore is set), PinFlag or
	// PinOff.
	Pinning PinMode
	// UserCredentials, for a PerUser upstream, returns the caller's own
	// credentials for it: environment variables (stdio) or headers (HTTP)
	// added to the configured ones for that caller's connection only. ctx
	// carries the caller (guard.PrincipalFromContext). An error refuses the
	// caller with its text, so it must say what to do without revealing a
	// secret. The discovery connection made at start runs without them.
	UserCredentials func(ctx context.Context) (env, headers map[string]string, err error)
	// MaxConnections bounds a PerUser upstream's concurrent connections
	// (processes, for stdio): when a new caller needs one beyond it, the
	// least recently used idle one is closed, and if none is idle the
	// caller is refused. Zero means DefaultMaxConnections.
	MaxConnections int
}

var upstreamName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// Validate reports the first problem with u, in words for the operator.
func (u *Upstream) Validate() error {
	if !upstreamName.MatchString(u.Name) {
		return fmt.Errorf("upstream name %q: use 1-63 letters, digits, '-' or '_', starting with a letter or digit", u.Name)
	}
	if (len(u.Command) == 0) == (u.URL == "") {
		return fmt.Errorf("upstream %s: set exactly one of command and url", u.Name)
	}
	if u.URL != "" {
		p, err := url.Parse(u.URL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("upstream %s: url must be an http(s) URL", u.Name)
		}
		if p.User != nil {
			return fmt.Errorf("upstream %s: url must not contain credentials; use headers", u.Name)
		}
	}
	if len(u.Command) > 0 && u.Command[0] == "" {
		return fmt.Errorf("upstream %s: command is empty", u.Name)
	}
	switch u.Isolation {
	case "", Shared, PerUser:
	default:
		return fmt.Errorf("upstream %s: isolation must be shared or per-user", u.Name)
	}
	if u.UserCredentials != nil && u.Isolation != PerUser {
		return fmt.Errorf("upstream %s: per-user credentials need isolation per-user, or one user's credential would serve everyone", u.Name)
	}
	switch u.Pinning {
	case "", PinBlock, PinFlag, PinOff:
	default:
		return fmt.Errorf("upstream %s: pinning must be block, flag or off", u.Name)
	}
	if u.Timeout < 0 || u.MaxResponseBytes < 0 || u.MaxConnections < 0 {
		return fmt.Errorf("upstream %s: timeout, max_response_bytes and max_connections must not be negative", u.Name)
	}
	return nil
}

func (u *Upstream) timeout() time.Duration {
	if u.Timeout > 0 {
		return u.Timeout
	}
	return DefaultTimeout
}

func (u *Upstream) maxConnections() int {
	if u.MaxConnections > 0 {
		return u.MaxConnections
	}
	return DefaultMaxConnections
}

func (u *Upstream) maxResponse() int64 {
	if u.MaxResponseBytes > 0 {
		return u.MaxResponseBytes
	}
	return DefaultMaxResponseBytes
}

// baseEnv is what a stdio upstream inherits from mcpguard's environment:
// what programs need to run, nothing that could hold a credential.
var baseEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL", "SYSTEMROOT", "NODE_PATH", "npm_config_cache"}

// environ builds a stdio upstream's environment: the minimal base, the
// configured variables, then the caller's own (user).
func (u *Upstream) environ(user map[string]string) []string {
	vars := map[string]string{}
	for _, k := range baseEnv {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	for _, m := range []map[string]string{u.Env, user} {
		for k, v := range m {
			vars[k] = v
		}
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// errTooLarge marks a message longer than the upstream's bound.
var errTooLarge = errors.New("message exceeds max_response_bytes")

// boundedLines passes a newline-delimited stream through, failing with
// errTooLarge once a single line exceeds max bytes. It bounds each JSON-RPC
// message of a stdio stream, and each line of an SSE stream.
type boundedLines struct {
	r       io.Reader
	max     int64
	cur     int64
	tripped *atomic.Bool
}

func (b *boundedLines) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	for i := 0; i < n; i++ {
		if p[i] == '\n' {
			b.cur = 0
			continue
		}
		b.cur++
		if b.cur > b.max {
			if b.tripped != nil {
				b.tripped.Store(true)
			}
			return 0, errTooLarge
		}
	}
	return n, err
}

// process is a running stdio upstream.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *tailBuffer
	done   chan struct{}
	err    error // set before done is closed
}

// startProcess starts u's command with its pipes; user holds the caller's
// own variables, if any.
func startProcess(u *Upstream, user map[string]string) (*process, error) {
	cmd := exec.Command(u.Command[0], u.Command[1:]...)
	cmd.Env = u.environ(user)
	cmd.Dir = u.Dir
	setProcessGroup(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, stdin: stdin, stdout: stdout, stderr: &tailBuffer{max: 2048}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", u.Command[0], err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop closes stdin, waits for the process to exit, and kills its process
// group if it has not within grace.
func (p *process) stop(grace time.Duration) {
	p.stdin.Close()
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	killProcessGroup(p.cmd)
	<-p.done
}

// exitReason describes why the process ended, with the tail of its stderr.
func (p *process) exitReason() string {
	select {
	case <-p.done:
	default:
		return ""
	}
	msg := "process exited"
	if p.err != nil {
		msg = "process exited: " + p.err.Error()
	}
	if tail := p.stderr.lastLine(); tail != "" {
		msg += " (stderr: " + tail + ")"
	}
	return msg
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// lastLine returns the last non-empty line, printable and at most 200 bytes.
func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(t.buf), []byte("\n"))
	line := strings.TrimSpace(string(lines[len(lines)-1]))
	line = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, line)
	if len(line) > 200 {
		line = line[:200]
	}
	return line
}

// headerTransport adds an upstream's configured headers to each request,
// removes anything that could carry a caller's credential, and bounds
// response bodies.
type headerTransport struct {
	next    http.RoundTripper
	headers map[string]string
	max     int64
	tripped *atomic.Bool
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Del("Cookie")
	req.Header.Del("X-API-Key")
	req.Header.Del("Authorization")
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = readCloser{&boundedLines{r: resp.Body, max: t.max, tripped: t.tripped}, resp.Body}
	} else {
		if resp.ContentLength > t.max {
			resp.Body.Close()
			t.tripped.Store(true)
			return nil, errTooLarge
		}
		resp.Body = readCloser{&boundedTotal{r: resp.Body, left: t.max, tripped: t.tripped}, resp.Body}
	}
	return resp, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// boundedTotal fails once more than left bytes are read.
type boundedTotal struct {
	r       io.Reader
	left    int64
	tripped *atomic.Bool
}

func (b *boundedTotal) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		b.tripped.Store(true)
		return 0, errTooLarge
	}
	return n, err
}

// ParseCommandFlag parses the one-line form "name=command args..." of
// `mcpguard serve --upstream`. Arguments are split on spaces; double or
// single quotes group an argument with spaces.
func ParseCommandFlag(s string) (Upstream, error) {
	name, rest, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return Upstream{}, fmt.Errorf("--upstream %q: want name=command args... or name=https://host/mcp", s)
	}
	rest = strings.TrimSpace(rest)
	u := Upstream{Name: name, Prefix: name}
	if strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://") {
		u.URL = rest
	} else {
		args, err := splitArgs(rest)
		if err != nil {
			return Upstream{}, fmt.Errorf("--upstream %s: %w", name, err)
		}
		u.Command = args
	}
	if err := u.Validate(); err != nil {
		return Upstream{}, err
	}
	return u, nil
}

// splitArgs splits a command line on whitespace, honouring quotes.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote rune
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Split(bufio.ScanRunes)
	for sc.Scan() {
		r := []rune(sc.Text())[0]
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inArg = r, true
		case r == ' ' || r == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("no command")
	}
	return args, nil
}
