package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcpguard/mcpguard/guard"
)

func newTest(t testing.TB, tools ...string) *Metrics {
	t.Helper()
	return New(Options{KnownTools: tools, NoRuntimeMetrics: true, StageBuckets: []float64{0.001, 0.1}})
}

func rec(method, target string, d guard.Outcome, reason string) *guard.Record {
	return &guard.Record{Method: method, Target: target, Decision: d, Reason: reason}
}

func TestRequestsTotal(t *testing.T) {
	m := newTest(t, "query", "delete_users")
	ctx := context.Background()
	for _, r := range []*guard.Record{
		rec("tools/call", "query", guard.Allowed, ""),
		rec("tools/call", "query", guard.Allowed, ""),
		rec("tools/call", "delete_users", guard.Denied, "tool delete_users requires role admin"),
		rec("tools/call", "not_registered", guard.Denied, "no rule grants tools:call:not_registered"),
		rec("tools/call", "", guard.AuthFailed, "no credentials"),
		rec("tools/list", "", guard.Allowed, "3 of 6 items visible"),
		rec("prompts/get", "summary", guard.Allowed, ""), // target ignored: not a tool call
		rec("initialize", "", guard.Allowed, "session method"),
		rec("x/unknown", "", guard.Denied, "method not permitted: x/unknown"),
		rec("", "", guard.Denied, "origin not allowed: https://evil.example"),
		rec("tools/list", "", guard.Outcome("SOMETHING_NEW"), ""),
		rec("tools/call", "query", guard.Failed, "rate limiter: store down"),
	} {
		m.Recorded(ctx, r, nil)
	}
	want := `
# HELP mcpguard_requests_total Audited requests by MCP method, decision and tool (tools/call only; unregistered tools are "other").
# TYPE mcpguard_requests_total counter
mcpguard_requests_total{decision="ALLOWED",method="initialize",tool=""} 1
mcpguard_requests_total{decision="ALLOWED",method="prompts/get",tool=""} 1
mcpguard_requests_total{decision="ALLOWED",method="tools/call",tool="query"} 2
mcpguard_requests_total{decision="ALLOWED",method="tools/list",tool=""} 1
mcpguard_requests_total{decision="AUTH_FAILED",method="tools/call",tool="other"} 1
mcpguard_requests_total{decision="DENIED",method="none",tool=""} 1
mcpguard_requests_total{decision="DENIED",method="other",tool=""} 1
mcpguard_requests_total{decision="DENIED",method="tools/call",tool="delete_users"} 1
mcpguard_requests_total{decision="DENIED",method="tools/call",tool="other"} 1
mcpguard_requests_total{decision="ERROR",method="tools/call",tool="query"} 1
mcpguard_requests_total{decision="other",method="tools/list",tool=""} 1
`
	if err := testutil.CollectAndCompare(m.requests, strings.NewReader(want), "mcpguard_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestRateLimitedAndAuthFailures(t *testing.T) {
	m := newTest(t)
	ctx := context.Background()
	m.Recorded(ctx, rec("tools/call", "query", guard.RateLimited, "rate limit exceeded (identity): retry after 3s"), nil)
	m.Recorded(ctx, rec("tools/call", "query", guard.RateLimited, "rate limit exceeded (identity): retry after 1s"), nil)
	m.Recorded(ctx, rec("tools/call", "query", guard.RateLimited, "rate limit exceeded (tool): retry after 1s"), nil)
	m.Recorded(ctx, rec("tools/list", "", guard.RateLimited, "rate limit exceeded (key): retry after 60s"), nil)
	m.Recorded(ctx, rec("tools/list", "", guard.RateLimited, "rate limit exceeded (galaxy): retry after 60s"), nil)
	m.Recorded(ctx, rec("tools/list", "", guard.RateLimited, "slow down"), nil)
	// Denied records never count as rate limited, whatever their reason.
	m.Recorded(ctx, rec("tools/list", "", guard.Denied, "rate limit exceeded (key): retry after 60s"), nil)

	want := `
# HELP mcpguard_rate_limited_total Requests refused by a rate limit, by the bucket that refused them.
# TYPE mcpguard_rate_limited_total counter
mcpguard_rate_limited_total{scope="identity"} 2
mcpguard_rate_limited_total{scope="key"} 1
mcpguard_rate_limited_total{scope="other"} 2
mcpguard_rate_limited_total{scope="tool"} 1
`
	if err := testutil.CollectAndCompare(m.rateLimited, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	m.Recorded(ctx, rec("", "", guard.AuthFailed, "no credentials"), nil)
	m.Recorded(ctx, rec("tools/call", "x", guard.AuthFailed, "invalid credentials: api key: key 0123456789abcdef expired"), nil)
	m.Recorded(ctx, rec("tools/call", "x", guard.AuthFailed, "invalid credentials: jwt: bad signature; source locked out for 300s"), nil)
	m.Recorded(ctx, rec("tools/call", "x", guard.AuthFailed, "invalid credentials: jwt: bad signature"), nil)
	m.Recorded(ctx, rec("", "", guard.AuthFailed, "source locked out after repeated authentication failures"), nil)
	r := rec("tools/list", "", guard.AuthFailed, "session belongs to another principal")
	r.AuthMethod = guard.MethodJWT
	m.Recorded(ctx, r, nil)
	r = rec("tools/list", "", guard.AuthFailed, "weird")
	r.AuthMethod = guard.AuthMethod("mtls-from-a-plugin")
	m.Recorded(ctx, r, nil)

	for _, c := range []struct {
		method, reason string
		want           float64
	}{
		{"unknown", "no_credentials", 1},
		{"unknown", "locked_out", 1},
		{"api_key", "expired", 1},
		{"jwt", "bad_signature", 2},
		{"jwt", "other", 1},
		{"unknown", "other", 1},
		{"api_key", "bad_signature", 0},
	} {
		if got := testutil.ToFloat64(m.authFailures.WithLabelValues(c.method, c.reason)); got != c.want {
			t.Errorf("auth_failures_total{method=%q,reason=%q} = %v, want %v", c.method, c.reason, got, c.want)
		}
	}
	// The fixed set is exported at zero from the start, and nothing else.
	if n := testutil.CollectAndCount(m.authFailures); n != len(authMethods)*len(authReasons) {
		t.Errorf("auth_failures_total has %d series, want %d", n, len(authMethods)*len(authReasons))
	}
}

func TestAuditErrors(t *testing.T) {
	m := newTest(t)
	ctx := context.Background()
	m.Recorded(ctx, rec("tools/call", "q", guard.Allowed, ""), nil)
	m.Recorded(ctx, rec("tools/call", "q", guard.Allowed, ""), errors.New("disk full"))
	m.Recorded(ctx, nil, errors.New("disk full"))
	if got := testutil.ToFloat64(m.auditErrors); got != 2 {
		t.Errorf("audit_write_errors_total = %v, want 2", got)
	}

	m.ObserveAuditWrite(2 * time.Millisecond)
	m.ObserveAuditWrite(3 * time.Millisecond)
	want := `
# HELP mcpguard_audit_write_seconds Time the audit sink took to write a record.
# TYPE mcpguard_audit_write_seconds histogram
`
	if err := testutil.CollectAndCompare(m.auditSeconds, strings.NewReader(want+histogramLines("mcpguard_audit_write_seconds", "", defaultAuditWriteBuckets, []float64{0.002, 0.003}))); err != nil {
		t.Fatal(err)
	}
}

// histogramLines renders the exposition of a histogram that observed obs.
func histogramLines(name, labels string, buckets, obs []float64) string {
	var b strings.Builder
	sep := ""
	if labels != "" {
		sep = ","
	}
	sum := 0.0
	for _, o := range obs {
		sum += o
	}
	for _, ub := range buckets {
		n := 0
		for _, o := range obs {
			if o <= ub {
				n++
			}
		}
		fmt.Fprintf(&b, "%s_bucket{%s%sle=\"%g\"} %d\n", name, labels, sep, ub, n)
	}
	fmt.Fprintf(&b, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, len(obs))
	if labels != "" {
		labels = "{" + labels + "}"
	}
	fmt.Fprintf(&b, "%s_sum%s %g\n%s_count%s %d\n", name, labels, sum, name, labels, len(obs))
	return b.String()
}

func TestStageDuration(t *testing.T) {
	m := newTest(t)
	ctx := context.Background()
	observe := func(s guard.Stage, d time.Duration) {
		ctx2, end := m.StartStage(ctx, s)
		if ctx2 != ctx {
			t.Errorf("StartStage(%s) changed the context", s)
		}
		end(d)
	}
	observe(guard.StageAuthenticate, 500*time.Microsecond)
	observe(guard.StageAuthenticate, 50*time.Millisecond)
	observe(guard.StageExecute, 2*time.Second)
	observe(guard.Stage("mystery"), time.Millisecond/2)

	want := "# HELP mcpguard_stage_duration_seconds Duration of the pipeline's stages.\n# TYPE mcpguard_stage_duration_seconds histogram\n"
	buckets := []float64{0.001, 0.1}
	want += histogramLines("mcpguard_stage_duration_seconds", `stage="audit"`, buckets, nil)
	want += histogramLines("mcpguard_stage_duration_seconds", `stage="authenticate"`, buckets, []float64{0.0005, 0.05})
	want += histogramLines("mcpguard_stage_duration_seconds", `stage="authorize"`, buckets, nil)
	want += histogramLines("mcpguard_stage_duration_seconds", `stage="execute"`, buckets, []float64{2})
	want += histogramLines("mcpguard_stage_duration_seconds", `stage="other"`, buckets, []float64{0.0005})
	want += histogramLines("mcpguard_stage_duration_seconds", `stage="ratelimit"`, buckets, nil)
	if err := testutil.CollectAndCompare(m.stageSeconds, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestSetKnownTools(t *testing.T) {
	m := newTest(t, "a", "b", "", "a", "other")
	ctx := context.Background()
	m.Recorded(ctx, rec("tools/call", "a", guard.Allowed, ""), nil)
	m.Recorded(ctx, rec("tools/call", "b", guard.Allowed, ""), nil)
	m.Recorded(ctx, rec("tools/call", "c", guard.Allowed, ""), nil)

	m.SetKnownTools([]string{"b", "c"})
	m.Recorded(ctx, rec("tools/call", "a", guard.Allowed, ""), nil)
	m.Recorded(ctx, rec("tools/call", "b", guard.Allowed, ""), nil)
	m.Recorded(ctx, rec("tools/call", "c", guard.Allowed, ""), nil)

	want := `
# HELP mcpguard_requests_total Audited requests by MCP method, decision and tool (tools/call only; unregistered tools are "other").
# TYPE mcpguard_requests_total counter
mcpguard_requests_total{decision="ALLOWED",method="tools/call",tool="b"} 2
mcpguard_requests_total{decision="ALLOWED",method="tools/call",tool="c"} 1
mcpguard_requests_total{decision="ALLOWED",method="tools/call",tool="other"} 2
`
	if err := testutil.CollectAndCompare(m.requests, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestCardinalityBounded(t *testing.T) {
	m := newTest(t, "query", "execute_sql")
	ctx := context.Background()
	outcomes := []guard.Outcome{guard.Allowed, guard.Denied, guard.AuthFailed, guard.RateLimited, guard.Failed}
	for i := range 10_000 {
		r := &guard.Record{
			Method:     fmt.Sprintf("tools/call%d", i%3), // mostly unknown methods
			Target:     fmt.Sprintf("tool-%d", i),
			Decision:   outcomes[i%len(outcomes)],
			Reason:     fmt.Sprintf("rate limit exceeded (scope-%d): reason %d", i, i),
			AuthMethod: guard.AuthMethod(fmt.Sprintf("method-%d", i)),
		}
		if i%2 == 0 {
			r.Method = "tools/call"
		}
		if r.Decision == guard.AuthFailed {
			r.Reason = fmt.Sprintf("invalid credentials: user-%d did something %d", i, i)
		}
		if i%7 == 0 {
			r.Decision = guard.Outcome(fmt.Sprintf("NEW_%d", i))
		}
		m.Recorded(ctx, r, nil)
		_, end := m.StartStage(ctx, guard.Stage(fmt.Sprintf("stage-%d", i)))
		end(time.Millisecond)
	}
	// tools/call × (6 decisions) × tool "other" + "other"/"none" method ×
	// 6 decisions with tool "": at most 6 + 12 series.
	if n := testutil.CollectAndCount(m.requests); n > 18 || n < 6 {
		t.Errorf("requests_total has %d series, want between 6 and 18", n)
	}
	if n := testutil.CollectAndCount(m.rateLimited); n != len(rateLimitScopes) {
		t.Errorf("rate_limited_total has %d series, want %d", n, len(rateLimitScopes))
	}
	if got := testutil.ToFloat64(m.rateLimited.WithLabelValues(Other)); got == 0 {
		t.Error("rate limits of unknown scopes were not counted as other")
	}
	if n := testutil.CollectAndCount(m.authFailures); n != len(authMethods)*len(authReasons) {
		t.Errorf("auth_failures_total has %d series, want %d", n, len(authMethods)*len(authReasons))
	}
	if n := testutil.CollectAndCount(m.stageSeconds); n != len(stages)+1 {
		t.Errorf("stage_duration_seconds has %d series, want %d", n, len(stages)+1)
	}
}

func TestHandler(t *testing.T) {
	m := New(Options{KnownTools: []string{"query"}})
	m.Recorded(context.Background(), rec("tools/call", "query", guard.Allowed, ""), nil)
	m.SetUpstreamUp("github", true)
	m.SetUpstreamUp("jira", false)
	depth := 7
	m.SetAuditQueue(func() int { return depth })

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := scrape(t, srv.URL)
	for _, want := range []string{
		`mcpguard_requests_total{decision="ALLOWED",method="tools/call",tool="query"} 1`,
		`mcpguard_upstream_up{upstream="github"} 1`,
		`mcpguard_upstream_up{upstream="jira"} 0`,
		`mcpguard_audit_queue_depth 7`,
		`mcpguard_audit_write_errors_total 0`,
		`mcpguard_rate_limited_total{scope="identity"} 0`,
		`mcpguard_auth_failures_total{method="unknown",reason="no_credentials"} 0`,
		`mcpguard_stage_duration_seconds_count{stage="authorize"} 0`,
		"# TYPE mcpguard_audit_write_seconds histogram",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}

	m.SetAuditQueue(nil)
	m.DeleteUpstream("jira")
	body = scrape(t, srv.URL)
	for _, gone := range []string{"mcpguard_audit_queue_depth", `upstream="jira"`} {
		if strings.Contains(body, gone) {
			t.Errorf("scrape still has %q", gone)
		}
	}
	if !strings.Contains(body, "promhttp_metric_handler_requests_total") {
		t.Error("scrape lacks the handler's own metrics")
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	return string(b)
}

func TestOwnRegistry(t *testing.T) {
	a, b := New(Options{}), New(Options{}) // two instances must not collide
	a.Recorded(context.Background(), rec("ping", "", guard.Allowed, ""), nil)
	if got := testutil.ToFloat64(b.requests.WithLabelValues("ping", "ALLOWED", "")); got != 0 {
		t.Errorf("a second Metrics saw the first one's requests: %v", got)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "mcpguard_") {
			t.Errorf("%s is in the default registry", mf.GetName())
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	m := newTest(t, "a")
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				m.Recorded(ctx, rec("tools/call", "a", guard.Allowed, ""), nil)
				_, end := m.StartStage(ctx, guard.StageAuthorize)
				end(time.Microsecond)
				if g == 0 && i%50 == 0 {
					m.SetKnownTools([]string{"a", fmt.Sprint("t", i)})
				}
			}
		})
	}
	wg.Wait()
	if got := testutil.ToFloat64(m.requests.WithLabelValues("tools/call", "ALLOWED", "a")); got != 2000 {
		t.Errorf("requests for tool a = %v, want 2000", got)
	}
}

func TestRateLimitScope(t *testing.T) {
	for reason, want := range map[string]string{
		"rate limit exceeded (identity): retry after 1s": "identity",
		"rate limit exceeded (key): retry after 60s":     "key",
		"rate limit exceeded (tool): retry after 2s":     "tool",
		"rate limit exceeded (): retry after 2s":         Other,
		"rate limit exceeded (identity":                  Other,
		"rate limit exceeded (identity2): …":             Other,
		"RATE LIMIT EXCEEDED (tool): …":                  Other,
		"":                                               Other,
	} {
		if got := rateLimitScopes[rateLimitScope(reason)]; got != want {
			t.Errorf("rateLimitScope(%q) = %q, want %q", reason, got, want)
		}
	}
}

func TestClassifyAuthFailure(t *testing.T) {
	for _, c := range []struct{ reason, want string }{
		// guard
		{"no credentials", "no_credentials"},
		{"source locked out after repeated authentication failures", "locked_out"},
		// authn/apikey
		{"invalid credentials: api key: malformed key", "malformed"},
		{"invalid credentials: api key: unknown key id 0123456789abcdef", "unknown_key"},
		{"invalid credentials: api key: wrong secret for key id 0123456789abcdef", "bad_signature"},
		{"invalid credentials: api key: key 0123456789abcdef was revoked", "revoked"},
		{"invalid credentials: api key: key 0123456789abcdef expired", "expired"},
		// authn/jwt
		{"invalid credentials: jwt: not a bearer token", "malformed"},
		{"invalid credentials: jwt: token too large", "malformed"},
		{"invalid credentials: jwt: malformed token", "malformed"},
		{"invalid credentials: jwt: algorithm not allowed", "bad_signature"},
		{"invalid credentials: jwt: unknown key id", "unknown_key"},
		{"invalid credentials: jwt: no key for token", "unknown_key"},
		{"invalid credentials: jwt: bad signature", "bad_signature"},
		{"invalid credentials: jwt: missing iss claim", "malformed"},
		{"invalid credentials: jwt: missing exp claim", "malformed"},
		{"invalid credentials: jwt: wrong issuer", "wrong_issuer"},
		{"invalid credentials: jwt: wrong audience", "wrong_audience"},
		{"invalid credentials: jwt: token expired", "expired"},
		{"invalid credentials: jwt: token not yet valid", "other"},
		{"invalid credentials: jwt: invalid claims", "malformed"},
		{"invalid credentials: jwt: token revoked", "revoked"},
		// authn router
		{"invalid credentials: api key authentication is disabled", "other"},
		// a refusal that also locked its source out is counted by its cause
		{"invalid credentials: jwt: token expired; source locked out for 300s", "expired"},
		{"invalid credentials: api key: wrong secret for key id 0123456789abcdef; source locked out for 1s", "bad_signature"},
		// case and length
		{"Token EXPIRED", "expired"},
		{strings.Repeat("x", 300) + " expired", "other"},
		{"", "other"},
		{"alice@example.com tried something", "other"},
	} {
		if got := authReasons[classifyAuthFailure(c.reason)]; got != c.want {
			t.Errorf("classifyAuthFailure(%q) = %q, want %q", c.reason, got, c.want)
		}
	}
}

func TestAuthMethodOf(t *testing.T) {
	for _, c := range []struct {
		method guard.AuthMethod
		reason string
		want   string
	}{
		{guard.MethodAPIKey, "", "api_key"},
		{guard.MethodJWT, "invalid credentials: api key: malformed key", "jwt"},
		{"", "invalid credentials: api key: malformed key", "api_key"},
		{"", "invalid credentials: jwt: bad signature", "jwt"},
		{"", "no credentials", "unknown"},
		{"custom", "custom failure", "unknown"},
	} {
		r := &guard.Record{AuthMethod: c.method, Reason: c.reason}
		if got := authMethods[authMethodOf(r)]; got != c.want {
			t.Errorf("authMethodOf(%q, %q) = %q, want %q", c.method, c.reason, got, c.want)
		}
	}
}

func BenchmarkRecorded(b *testing.B) {
	ctx := context.Background()
	tools := make([]string, 50)
	for i := range tools {
		tools[i] = fmt.Sprint("tool_", i)
	}
	m := New(Options{KnownTools: tools, NoRuntimeMetrics: true})
	for _, bc := range []struct {
		name string
		r    *guard.Record
	}{
		{"tools_call_allowed", rec("tools/call", "tool_17", guard.Allowed, "")},
		{"tools_call_unknown_tool", rec("tools/call", "nope", guard.Denied, "no rule grants it")},
		{"tools_list", rec("tools/list", "", guard.Allowed, "3 of 6 items visible")},
		{"rate_limited", rec("tools/call", "tool_1", guard.RateLimited, "rate limit exceeded (identity): retry after 3s")},
		{"auth_failed", rec("tools/call", "tool_1", guard.AuthFailed, "invalid credentials: jwt: token expired")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Recorded(ctx, bc.r, nil)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		r := rec("tools/call", "tool_17", guard.Allowed, "")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Recorded(ctx, r, nil)
			}
		})
	})
}

func BenchmarkStartStage(b *testing.B) {
	ctx := context.Background()
	m := New(Options{NoRuntimeMetrics: true})
	b.ReportAllocs()
	for b.Loop() {
		_, end := m.StartStage(ctx, guard.StageAuthorize)
		end(42 * time.Microsecond)
	}
}
