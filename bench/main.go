// Command bench measures what mcpguard's security pipeline costs: it
// builds mcpguard and a plain go-sdk server with the same demo tools
// (bench/unsecured), starts each variant as its own process on 127.0.0.1,
// drives them all with the same load from the go-sdk client, and prints a
// Markdown table of throughput, latency percentiles, server CPU per 1,000
// calls and peak RSS, relative to the unsecured server.
//
// With -idle N it instead opens N idle sessions to one variant and reports
// the server's resident memory per idle session.
//
// Usage:
//
//	go run ./bench [-sessions 64] [-calls 200] [-warmup 10] [-variants a,b,c,c2,d] [-out FILE]
//	go run ./bench -idle 10000 [-variant c]
//
// See bench/README.md for what is measured and how to read the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	Sessions        int
	Calls           int
	Warmup          int
	Variants        string
	Idle            int
	Variant         string
	IdleConcurrency int
	SSE             bool
	SharedToken     bool
	Settle          time.Duration
	VariantTimeout  time.Duration
	Timeout         time.Duration
	Out             string
	Keep            bool
	Postgres, Redis string
}

// parseFlags parses args into options and checks their bounds.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Sessions, "sessions", 64, "concurrent MCP sessions in the load run")
	fs.IntVar(&o.Calls, "calls", 200, "measured tools/call of "+benchTool+" per session")
	fs.IntVar(&o.Warmup, "warmup", 10, "unmeasured warm-up calls per session")
	fs.StringVar(&o.Variants, "variants", "a,b,c,c2,d", "comma-separated variants to load: a unsecured, b API key, c JWT RS256, c2 JWT ES256, d JWT RS256 with durable audit")
	fs.IntVar(&o.Idle, "idle", 0, "idle-session mode: open this many sessions to -variant and report memory (0 = load mode)")
	fs.StringVar(&o.Variant, "variant", "c", "variant for -idle")
	fs.IntVar(&o.IdleConcurrency, "idle-concurrency", 64, "sessions initializing at once in -idle mode")
	fs.BoolVar(&o.SSE, "sse", false, "keep each session's standalone SSE GET stream open, as a full client does (one more connection per session)")
	fs.BoolVar(&o.SharedToken, "shared-token", false, "JWT variants: one token for every session instead of one subject per session")
	fs.DurationVar(&o.Settle, "settle", 2*time.Second, "-idle mode: pause before each RSS reading")
	fs.DurationVar(&o.VariantTimeout, "variant-timeout", 3*time.Minute, "bound on one variant's load run, or on the idle run (plus its two -settle pauses)")
	fs.DurationVar(&o.Timeout, "timeout", 15*time.Minute, "bound on the whole bench")
	fs.StringVar(&o.Out, "out", "", "also write the report to this file")
	fs.StringVar(&o.Postgres, "postgres", os.Getenv("MCPGUARD_TEST_POSTGRES"), "PostgreSQL URL for variants s1, s2 (default $MCPGUARD_TEST_POSTGRES)")
	fs.StringVar(&o.Redis, "redis", os.Getenv("MCPGUARD_TEST_REDIS"), "Redis URL for variants s1, s2 (default $MCPGUARD_TEST_REDIS)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (binaries, configs, server and audit logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	bound := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("-%s %d: must be between %d and %d", name, v, lo, hi))
		}
	}
	bound("sessions", o.Sessions, 1, 10_000)
	bound("calls", o.Calls, 1, 1_000_000)
	bound("warmup", o.Warmup, 0, 100_000)
	bound("idle", o.Idle, 0, 100_000)
	bound("idle-concurrency", o.IdleConcurrency, 1, 1024)
	if o.Sessions*o.Calls > 10_000_000 {
		errs = append(errs, errors.New("-sessions × -calls must be at most 10,000,000"))
	}
	for name, d := range map[string]time.Duration{"settle": o.Settle, "variant-timeout": o.VariantTimeout, "timeout": o.Timeout} {
		if d < 0 || (d == 0 && name != "settle") {
			errs = append(errs, fmt.Errorf("-%s %v: must be positive", name, d))
		}
	}
	return o, errors.Join(errs...)
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := run(ctx, o, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

// run performs the benchmark o, writing progress to logw and the report to
// out (and to o.Out).
func run(ctx context.Context, o options, args []string, out, logw io.Writer) error {
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "bench: "+format+"\n", a...) }

	var selected []variant
	var err error
	if o.Idle > 0 {
		selected, err = selectVariants(o.Variant)
		if err == nil && len(selected) != 1 {
			err = fmt.Errorf("-variant %q: name exactly one variant", o.Variant)
		}
	} else {
		selected, err = selectVariants(o.Variants)
	}
	if err != nil {
		return err
	}

	nofile, err := raiseFileLimit()
	if err != nil {
		logf("warning: %v", err)
	}
	tck, tckSource := clockTicks(ctx)
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo") // "unknown" model without it

	root, err := os.MkdirTemp("", "mcpguard-bench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	if o.Keep {
		logf("keeping %s", root)
	} else {
		defer os.RemoveAll(root)
	}

	logf("building mcpguard and bench/unsecured")
	bins, err := buildBinaries(ctx, root)
	if err != nil {
		return err
	}
	lo := launchOptions{Bins: bins, Signers: map[string]*tokenSigner{}, SharedToken: o.SharedToken, TokenTTL: o.Timeout + time.Hour,
		Postgres: o.Postgres, Redis: o.Redis}
	for _, v := range selected {
		if v.Replicas > 0 && (o.Postgres == "" || o.Redis == "") {
			return fmt.Errorf("variant %s needs -postgres and -redis (or `source .ci/services`)", v.Key)
		}
	}
	for _, v := range selected {
		if v.Kind == kindJWT && lo.Signers[v.Alg] == nil {
			if lo.Signers[v.Alg], err = newTokenSigner(v.Alg); err != nil {
				return err
			}
		}
	}

	var report strings.Builder
	fmt.Fprintf(&report, "Command: `go run ./bench %s`\n\n", strings.Join(args, " "))
	fmt.Fprintf(&report, "- Machine: %d CPUs (GOMAXPROCS %d), %s, %s/%s, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(cpuinfo), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(&report, "- Clock ticks: %.0f/s (%s); open-file limit: %d\n", tck, tckSource, nofile)
	fmt.Fprintf(&report, "- Client: go-sdk StreamableClientTransport, standalone SSE stream %s, %s\n", onOff(o.SSE), tokenMode(o.SharedToken))

	if o.Idle > 0 {
		v := selected[0]
		fmt.Fprintf(&report, "- Idle mode: %d sessions (initialize only, kept open), %d initializing at once, settle %v before each RSS reading\n\n", o.Idle, o.IdleConcurrency, o.Settle)
		logf("starting %s", v.Label)
		l, err := launch(ctx, v, root, lo)
		if err != nil {
			return err
		}
		defer l.Proc.Stop()
		logf("opening %d idle sessions", o.Idle)
		r, release, err := runIdle(ctx, l.Proc.URL, l.Auth, l.Proc.Pid(), idleConfig{
			Sessions: o.Idle, Concurrency: o.IdleConcurrency, SSE: o.SSE, Settle: o.Settle,
			Timeout: o.VariantTimeout + 2*o.Settle, // the settle pauses are not part of the bound
		})
		r.Variant = v
		l.Proc.Stop() // the sessions end with the server; closing 10,000 one by one is not measured
		release()
		if err != nil {
			return err
		}
		if err := renderIdleTable(&report, r); err != nil {
			return err
		}
		return emit(out, o.Out, report.String())
	}

	fmt.Fprintf(&report, "- Load: %d sessions × %d measured tools/call of %s (after %d warm-up calls each); rate limit %d req/min (never reached)\n\n",
		o.Sessions, o.Calls, benchTool, o.Warmup, benchRequestsPerMinute)
	var results []loadResult
	for _, v := range selected {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		logf("%s: starting", v.Label)
		r, err := loadVariant(ctx, v, root, lo, loadConfig{
			Sessions: o.Sessions, Calls: o.Calls, Warmup: o.Warmup, SSE: o.SSE, Timeout: o.VariantTimeout, ClockTck: tck,
		})
		if err != nil {
			logf("%s: %v", v.Label, err)
			r = loadResult{ServerError: err.Error()}
		} else {
			logf("%s: %.0f calls/s, p50 %s ms, %d errors", v.Label, r.throughput(), ms(r.P50), r.Errors)
			if r.FirstError != nil {
				logf("%s: first error: %v", v.Label, r.FirstError)
			}
		}
		r.Variant = v
		results = append(results, r)
	}
	if err := renderLoadTable(&report, results); err != nil {
		return err
	}
	return emit(out, o.Out, report.String())
}

// loadVariant starts v, runs the load against it and stops it.
func loadVariant(ctx context.Context, v variant, root string, lo launchOptions, c loadConfig) (loadResult, error) {
	l, err := launch(ctx, v, root, lo)
	if err != nil {
		return loadResult{}, err
	}
	defer l.stop()
	var urls []string
	var pids []int
	for _, p := range l.procs() {
		urls, pids = append(urls, p.URL), append(pids, p.Pid())
	}
	return runLoad(ctx, urls, l.Auth, pids, c)
}

// emit writes the report to out and, when path is set, to that file.
func emit(out io.Writer, path, report string) error {
	if _, err := io.WriteString(out, report); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// raiseFileLimit raises this process's open-file soft limit to its hard
// limit. Setting it explicitly (rather than relying on the Go runtime's
// own raise) makes the servers, started as children, inherit it too.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("get open-file limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return lim.Cur, fmt.Errorf("raise open-file limit to %d: %w", lim.Max, err)
	}
	return lim.Cur, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func tokenMode(shared bool) string {
	if shared {
		return "one JWT shared by all sessions"
	}
	return "one JWT subject per session (API key variant: the demo viewer key for all)"
}
