package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kind is how a variant authenticates.
type kind int

const (
	kindUnsecured kind = iota // plain go-sdk server, no guard
	kindAPIKey                // mcpguard, API key
	kindJWT                   // mcpguard, JWT with a static public key
)

// variant is one server configuration under test.
type variant struct {
	Key      string // flag name: a, b, c, c2, d
	Label    string // table label
	Baseline bool   // the unsecured reference the others are compared to
	Kind     kind
	Alg      string // JWT algorithm, for kindJWT
	Durable  bool   // audit.durable
	// Replicas > 0 runs that many mcpguard processes on one PostgreSQL
	// store and one Redis (launchOptions.Postgres, .Redis), sessions spread
	// over them round-robin.
	Replicas int
}

// auditMode describes the variant's audit log for the table.
func (v variant) auditMode() string {
	switch {
	case v.Kind == kindUnsecured:
		return "none"
	case v.Durable:
		return "file, durable (fsync before reply)"
	default:
		return "file, async batched (durable: false)"
	}
}

// variants returns every variant the bench knows, in table order.
func variants() []variant {
	return []variant{
		{Key: "a", Label: "(a) unsecured go-sdk", Baseline: true, Kind: kindUnsecured},
		{Key: "b", Label: "(b) mcpguard API key", Kind: kindAPIKey},
		{Key: "c", Label: "(c) mcpguard JWT RS256 + RBAC", Kind: kindJWT, Alg: "RS256"},
		{Key: "c2", Label: "(c2) mcpguard JWT ES256 + RBAC", Kind: kindJWT, Alg: "ES256"},
		{Key: "d", Label: "(d) mcpguard JWT RS256 + RBAC, durable audit", Kind: kindJWT, Alg: "RS256", Durable: true},
		{Key: "s1", Label: "(s1) mcpguard API key, PostgreSQL + Redis, 1 replica", Kind: kindAPIKey, Replicas: 1},
		{Key: "s2", Label: "(s2) mcpguard API key, PostgreSQL + Redis, 2 replicas", Kind: kindAPIKey, Replicas: 2},
	}
}

// selectVariants returns the variants named in the comma-separated list,
// in table order.
func selectVariants(list string) ([]variant, error) {
	want := map[string]bool{}
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			want[k] = true
		}
	}
	var out []variant
	for _, v := range variants() {
		if want[v.Key] {
			out = append(out, v)
			delete(want, v.Key)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for k := range want {
			unknown = append(unknown, k)
		}
		return nil, fmt.Errorf("unknown variant(s) %s: choose from a, b, c, c2, d, s1, s2", strings.Join(unknown, ", "))
	}
	if len(out) == 0 {
		return nil, errors.New("no variant selected")
	}
	return out, nil
}

// benchRequestsPerMinute is the rate limit of the mcpguard variants: high
// enough never to trigger, so the limiter runs but never refuses.
const benchRequestsPerMinute = 100_000_000

// mcpguardConfig renders the YAML configuration of an mcpguard variant
// whose files live in dir; pubKeyPath is the JWT public key file.
func mcpguardConfig(v variant, dir, pubKeyPath string, o launchOptions) string {
	q := strconv.Quote // a JSON string is a valid YAML double-quoted scalar
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  addr: 127.0.0.1:0\ndata_dir: %s\n", q(filepath.Join(dir, "data")))
	if v.Replicas > 0 {
		fmt.Fprintf(&b, "store: %s\nredis:\n  url: %s\n", q(o.Postgres), q(o.Redis))
	}
	fmt.Fprintf(&b, "auth:\n  api_keys: {enabled: %t}\n", v.Kind == kindAPIKey)
	if v.Kind == kindJWT {
		fmt.Fprintf(&b, "  jwt:\n    enabled: true\n    issuer: %s\n    audiences: [%s]\n", q(jwtIssuer), q(jwtAudience))
		fmt.Fprintf(&b, "    keys:\n      - {kid: %s, alg: %s, public_key: %s}\n", q(jwtKeyID), v.Alg, q("file:"+pubKeyPath))
	}
	fmt.Fprintf(&b, "rate_limit:\n  requests_per_minute: %d\n", benchRequestsPerMinute)
	fmt.Fprintf(&b, "audit:\n  log: %s\n  durable: %t\n", q(filepath.Join(dir, "audit.log")), v.Durable)
	return b.String()
}

// binaries are the executables the bench built.
type binaries struct {
	MCPGuard  string
	Unsecured string
}

// buildBinaries builds mcpguard and the unsecured server into dir.
func buildBinaries(ctx context.Context, dir string) (binaries, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"github.com/mcpguard/mcpguard/cmd/mcpguard", "github.com/mcpguard/mcpguard/bench/unsecured")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return binaries{}, fmt.Errorf("go build: %w\n%s", err, out.String())
	}
	return binaries{MCPGuard: filepath.Join(dir, "mcpguard"), Unsecured: filepath.Join(dir, "unsecured")}, nil
}

// serverProc is a running server process.
type serverProc struct {
	URL     string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been waited for
}

var readyRE = regexp.MustCompile(`Server ready on (http://\S+)`)

// childEnv is this process's environment without MCPGUARD_* settings,
// which would override the bench's configuration files.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPGUARD_") {
			env = append(env, kv)
		}
	}
	return env
}

// startServer starts bin with args in dir, logging to dir/server.log, and
// waits (at most a minute) for its "Server ready on URL" line.
func startServer(ctx context.Context, dir, bin string, args ...string) (*serverProc, error) {
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the bench, even if the bench is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &serverProc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()

	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := readyRE.FindSubmatch(p.output()); m != nil {
			p.URL = string(m[1])
			if err := checkLoopbackURL(p.URL); err != nil {
				p.Stop()
				return nil, err
			}
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before it was ready (%v); output:\n%s", filepath.Base(bin), cmd.ProcessState, p.tail())
		case <-deadline.C:
			p.Stop()
			return nil, fmt.Errorf("%s not ready within a minute; output:\n%s", filepath.Base(bin), p.tail())
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("waiting for %s: %w", filepath.Base(bin), ctx.Err())
		case <-tick.C:
		}
	}
}

// output is everything the server has written so far.
func (p *serverProc) output() []byte {
	b, _ := os.ReadFile(p.logPath) // a missing log reads as empty
	return b
}

// tail is the last few KiB of the server's output, for error messages.
func (p *serverProc) tail() string {
	b := p.output()
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// Pid is the server's process id.
func (p *serverProc) Pid() int { return p.cmd.Process.Pid }

// Stop asks the server to shut down (SIGTERM), and kills it if it has not
// exited within 15 seconds.
func (p *serverProc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // it may have just exited
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// checkLoopbackURL refuses any server URL that is not on 127.0.0.1 (or
// another loopback address): the bench sends traffic nowhere else.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("server URL %q: %w", raw, err)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("server URL %q is not on a loopback address", raw)
	}
	return nil
}

// launched is a started variant and how to authenticate to it.
type launched struct {
	Proc *serverProc
	// More are the further replicas of a replicated variant.
	More []*serverProc
	// Auth returns the Authorization header value for session i; empty
	// for no header.
	Auth func(i int) (string, error)
}

// demoViewerKeyRE finds the viewer's API key that `serve --demo` prints.
var demoViewerKeyRE = regexp.MustCompile(`(?m)^\s+viewer\s+(mcp_[0-9a-f]{16}_[A-Za-z0-9_-]+)\s*$`)

// launchOptions are the inputs launch needs besides the variant.
type launchOptions struct {
	Bins        binaries
	Signers     map[string]*tokenSigner // by algorithm
	SharedToken bool                    // one token (or key) for every session
	TokenTTL    time.Duration
	// Postgres and Redis are the servers the replicated variants share.
	Postgres, Redis string
}

// launch starts variant v in a new directory under root.
func launch(ctx context.Context, v variant, root string, o launchOptions) (*launched, error) {
	dir, err := os.MkdirTemp(root, "variant-"+v.Key+"-")
	if err != nil {
		return nil, fmt.Errorf("variant %s: %w", v.Key, err)
	}
	if v.Kind == kindUnsecured {
		p, err := startServer(ctx, dir, o.Bins.Unsecured, "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "demo.db"))
		if err != nil {
			return nil, err
		}
		return &launched{Proc: p, Auth: func(int) (string, error) { return "", nil }}, nil
	}

	var signer *tokenSigner
	pubPath := ""
	if v.Kind == kindJWT {
		signer = o.Signers[v.Alg]
		if signer == nil {
			return nil, fmt.Errorf("variant %s: no %s signer", v.Key, v.Alg)
		}
		pubPath = filepath.Join(dir, "jwt.pub")
		if err := os.WriteFile(pubPath, signer.PublicPEM, 0o600); err != nil {
			return nil, fmt.Errorf("variant %s: write public key: %w", v.Key, err)
		}
	}
	cfgPath := filepath.Join(dir, "mcpguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(mcpguardConfig(v, dir, pubPath, o)), 0o600); err != nil {
		return nil, fmt.Errorf("variant %s: write config: %w", v.Key, err)
	}
	p, err := startServer(ctx, dir, o.Bins.MCPGuard, "serve", "--demo", "--config", cfgPath, "--addr", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if v.Replicas > 0 {
		return launchReplicas(ctx, v, dir, cfgPath, p, o)
	}
	if v.Kind == kindAPIKey {
		m := demoViewerKeyRE.FindSubmatch(p.output())
		if m == nil {
			p.Stop()
			return nil, fmt.Errorf("variant %s: no viewer API key in the demo output:\n%s", v.Key, p.tail())
		}
		auth := "Bearer " + string(m[1])
		return &launched{Proc: p, Auth: func(int) (string, error) { return auth, nil }}, nil
	}
	now := time.Now()
	shared := ""
	if o.SharedToken {
		tok, err := signer.token("bench-shared", now, o.TokenTTL)
		if err != nil {
			p.Stop()
			return nil, err
		}
		shared = "Bearer " + tok
	}
	return &launched{Proc: p, Auth: func(i int) (string, error) {
		if shared != "" {
			return shared, nil
		}
		tok, err := signer.token("bench-"+strconv.Itoa(i), now, o.TokenTTL)
		if err != nil {
			return "", err
		}
		return "Bearer " + tok, nil
	}}, nil
}

var createdKeyRE = regexp.MustCompile(`mcp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`)

// launchReplicas starts the further replicas of v next to the first, p,
// each in a directory of its own (its own log and audit log) but on the
// same store, Redis and demo database, and creates the API key the load
// uses (the shared store may hold the demo keys of an earlier run).
func launchReplicas(ctx context.Context, v variant, dir, cfgPath string, p *serverProc, o launchOptions) (*launched, error) {
	l := &launched{Proc: p}
	fail := func(err error) (*launched, error) {
		l.stop()
		return nil, err
	}
	cmd := exec.CommandContext(ctx, o.Bins.MCPGuard, "keys", "create", "--config", cfgPath, "--name", fmt.Sprintf("bench-%d", time.Now().UnixNano()), "--role", "viewer")
	cmd.Dir, cmd.Env = dir, childEnv()
	out, err := cmd.CombinedOutput()
	key := createdKeyRE.Find(out)
	if err != nil || key == nil {
		return fail(fmt.Errorf("variant %s: keys create: %v\n%s", v.Key, err, out))
	}
	for i := 2; i <= v.Replicas; i++ {
		rdir := filepath.Join(dir, fmt.Sprintf("replica-%d", i))
		if err := os.Mkdir(rdir, 0o700); err != nil {
			return fail(err)
		}
		rcfg := filepath.Join(rdir, "mcpguard.yaml")
		if err := os.WriteFile(rcfg, []byte(mcpguardConfig(v, rdir, "", o)), 0o600); err != nil {
			return fail(err)
		}
		r, err := startServer(ctx, rdir, o.Bins.MCPGuard, "serve", "--config", rcfg, "--addr", "127.0.0.1:0",
			"--database", filepath.Join(dir, "data", "demo.db"))
		if err != nil {
			return fail(err)
		}
		l.More = append(l.More, r)
	}
	auth := "Bearer " + string(key)
	l.Auth = func(int) (string, error) { return auth, nil }
	return l, nil
}

// procs is every replica's process.
func (l *launched) procs() []*serverProc { return append([]*serverProc{l.Proc}, l.More...) }

// stop stops every replica.
func (l *launched) stop() {
	for _, p := range l.procs() {
		p.Stop()
	}
}
