package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// loopback is the redirect listener of one authorization: an HTTP server on
// 127.0.0.1 that waits for the authorization server's redirect to /callback.
type loopback struct {
	url     string
	srv     *http.Server
	results chan url.Values

	mu    sync.Mutex
	state string // the expected state, once known
}

// expect sets the state that the redirect must carry.
func (lb *loopback) expect(state string) {
	lb.mu.Lock()
	lb.state = state
	lb.mu.Unlock()
}

// listenLoopback listens on 127.0.0.1:port (0: any free port).
func listenLoopback(port int) (*loopback, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, fmt.Errorf("listening for the browser's redirect on 127.0.0.1:%d: %w", port, err)
	}
	lb := &loopback{
		url:     fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port),
		results: make(chan url.Values, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		lb.mu.Lock()
		expected := lb.state
		lb.mu.Unlock()
		// Only the redirect that carries this authorization's state counts:
		// anything else (another tab, a page probing localhost) is refused
		// without ending the wait.
		if expected == "" || q.Get("state") != expected {
			http.Error(w, "This is not the sign-in this mcpguard process is waiting for.", http.StatusBadRequest)
			return
		}
		select {
		case lb.results <- q:
		default:
			http.Error(w, "This sign-in was already completed.", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		msg := "Signed in. You can close this window and return to your MCP client."
		if e := q.Get("error"); e != "" {
			msg = "Sign-in failed: " + printable(e, 100) + ". You can close this window."
		}
		fmt.Fprintf(w, "<!doctype html><title>mcpguard</title><p>%s</p>\n", html.EscapeString(msg))
	})
	lb.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	go lb.srv.Serve(ln)
	return lb, nil
}

// wait returns the redirect's code, state and iss (see expect).
func (lb *loopback) wait(ctx context.Context) (*auth.AuthorizationResult, error) {
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the browser sign-in: %w", ctx.Err())
	case q := <-lb.results:
		if e := q.Get("error"); e != "" {
			msg := "the authorization server refused the sign-in: " + printable(e, 100)
			if d := q.Get("error_description"); d != "" {
				msg += " (" + printable(d, 200) + ")"
			}
			return nil, errors.New(msg)
		}
		if q.Get("code") == "" {
			return nil, errors.New("the browser redirect carried no authorization code")
		}
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
}

func (lb *loopback) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lb.srv.Shutdown(ctx)
}

// OpenBrowser opens u in the user's browser: the command in $BROWSER if set
// (run directly, with the URL as its one argument, no shell), else xdg-open
// (or open on macOS). It returns once the browser command has started.
func OpenBrowser(ctx context.Context, u string) error {
	name := os.Getenv("BROWSER")
	var args []string
	if name != "" {
		f := strings.Fields(name)
		name, args = f[0], f[1:]
	} else if runtime.GOOS == "darwin" {
		name = "open"
	} else {
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("no browser command (%s)", name)
	}
	cmd := exec.Command(path, append(args, u)...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go cmd.Wait()
	return nil
}

// NoBrowser is an OpenBrowser that opens nothing: the URL is only printed.
func NoBrowser(context.Context, string) error { return errors.New("disabled by --no-browser") }
