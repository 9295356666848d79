package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// benchTool is the tool every measured call invokes: cheap, read-only and
// allowed to the viewer role, so the numbers show the pipeline's cost.
const benchTool = "list_tables"

// authTransport adds an Authorization header to every request.
type authTransport struct {
	value string // header value; empty sends none
	base  http.RoundTripper
}

// RoundTrip implements http.RoundTripper. It copies the request shallowly
// with its own header map rather than modifying the caller's request.
func (t authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.value == "" {
		return t.base.RoundTrip(r)
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = make(http.Header, len(r.Header)+1)
	for k, v := range r.Header {
		r2.Header[k] = v
	}
	r2.Header["Authorization"] = []string{t.value}
	return t.base.RoundTrip(r2)
}

// newHTTPTransport returns a transport that keeps up to conns idle
// connections to the server and dials only loopback addresses.
func newHTTPTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil, // never through a proxy: the servers are local
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dial %s: %w", addr, err)
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("dial %s: the bench only connects to loopback addresses", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        0, // no overall limit
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
}

// sessionFactory opens MCP sessions to one server.
type sessionFactory struct {
	url       string
	client    *mcp.Client
	transport *http.Transport
	auth      func(int) (string, error)
	sse       bool // keep the standalone SSE stream, as a full client does
}

// newSessionFactory prepares sessions to url; conns sizes the idle pool.
func newSessionFactory(url string, auth func(int) (string, error), conns int, sse bool) *sessionFactory {
	return &sessionFactory{
		url:       url,
		client:    mcp.NewClient(&mcp.Implementation{Name: "mcpguard-bench", Version: "1"}, nil),
		transport: newHTTPTransport(conns),
		auth:      auth,
		sse:       sse,
	}
}

// open initializes session i, waiting at most 30 seconds.
func (f *sessionFactory) open(ctx context.Context, i int) (*mcp.ClientSession, error) {
	value, err := f.auth(i)
	if err != nil {
		return nil, fmt.Errorf("session %d credential: %w", i, err)
	}
	tr := &mcp.StreamableClientTransport{
		Endpoint:             f.url,
		HTTPClient:           &http.Client{Transport: authTransport{value: value, base: f.transport}},
		MaxRetries:           -1,
		DisableStandaloneSSE: !f.sse,
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := f.client.Connect(ctx, tr, nil)
	if err != nil {
		return nil, fmt.Errorf("session %d initialize: %w", i, err)
	}
	return cs, nil
}

// closeSessions closes the sessions (those not nil), 64 at a time.
func closeSessions(sessions []*mcp.ClientSession) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, cs := range sessions {
		if cs == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = cs.Close() // the server may already be gone
		})
	}
	wg.Wait()
}

// callOnce calls the bench tool and reports whether it succeeded.
func callOnce(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams) error {
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("%s returned isError", params.Name)
	}
	return nil
}

// loadConfig is the shape of one load run.
type loadConfig struct {
	Sessions int
	Calls    int // measured calls per session
	Warmup   int // unmeasured calls per session before the measured phase
	SSE      bool
	Timeout  time.Duration // bound on the whole run of one variant
	ClockTck float64
}

// runLoad drives the servers (replicas) at urls, whose processes are pids:
// session i goes to urls[i % len(urls)], as a round-robin load balancer
// would send it. Every session initializes and warms up, then all start the
// measured phase together. Server CPU and peak RSS are summed over pids.
func runLoad(ctx context.Context, urls []string, auth func(int) (string, error), pids []int, c loadConfig) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	factories := make([]*sessionFactory, len(urls))
	for i, u := range urls {
		factories[i] = newSessionFactory(u, auth, c.Sessions/len(urls)+8, c.SSE)
		defer factories[i].transport.CloseIdleConnections()
	}

	lat := make([]time.Duration, c.Sessions*c.Calls)
	errs := make([]int, c.Sessions)
	firstErr := make([]error, c.Sessions)
	sessions := make([]*mcp.ClientSession, c.Sessions)
	setupErr := make(chan error, c.Sessions)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(c.Sessions)
	for i := range c.Sessions {
		done.Go(func() {
			params := &mcp.CallToolParams{Name: benchTool, Arguments: map[string]any{}}
			cs, err := factories[i%len(factories)].open(ctx, i)
			for j := 0; err == nil && j < c.Warmup; j++ {
				if err = callOnce(ctx, cs, params); err != nil {
					err = fmt.Errorf("session %d warm-up call %d: %w", i, j, err)
				}
			}
			sessions[i] = cs
			if err != nil {
				setupErr <- err
			}
			ready.Done()
			if err != nil {
				return
			}
			select {
			case <-start:
			case <-ctx.Done():
				return
			}
			mine := lat[i*c.Calls : (i+1)*c.Calls]
			for j := range mine {
				t0 := time.Now()
				err := callOnce(ctx, cs, params)
				mine[j] = time.Since(t0)
				if err != nil {
					errs[i]++
					if firstErr[i] == nil {
						firstErr[i] = err
					}
				}
			}
		})
	}
	ready.Wait()
	select {
	case err := <-setupErr:
		cancel()
		done.Wait()
		closeSessions(sessions)
		return loadResult{}, err
	default:
	}

	srv0, err := sumCPU(pids)
	if err != nil {
		cancel()
		done.Wait()
		return loadResult{}, err
	}
	self0, err := readCPU(os.Getpid())
	if err != nil {
		cancel()
		done.Wait()
		return loadResult{}, err
	}
	t0 := time.Now()
	close(start)
	done.Wait()
	wall := time.Since(t0)
	srv1, errS := sumCPU(pids)
	self1, errC := readCPU(os.Getpid())
	var hwm uint64
	var errH error
	for _, pid := range pids {
		h, err := readStatusKiB(pid, "VmHWM")
		hwm, errH = hwm+h, errors.Join(errH, err)
	}
	closeSessions(sessions)
	if err := errors.Join(errS, errC, errH); err != nil {
		return loadResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return loadResult{}, fmt.Errorf("load run did not finish within %v: %w", c.Timeout, err)
	}

	r := loadResult{
		Calls:      len(lat),
		Wall:       wall,
		ServerCPU:  float64(srv1-srv0) / c.ClockTck,
		ClientCPU:  float64(self1-self0) / c.ClockTck,
		PeakRSSKiB: hwm,
	}
	for i, n := range errs {
		r.Errors += n
		if firstErr[i] != nil && r.FirstError == nil {
			r.FirstError = firstErr[i]
		}
	}
	r.summarize(lat)
	return r, nil
}

// sumCPU is the CPU time used by the processes pids together.
func sumCPU(pids []int) (cpuTicks, error) {
	var total cpuTicks
	for _, pid := range pids {
		t, err := readCPU(pid)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return total, nil
}
