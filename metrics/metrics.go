// Package metrics exports mcpguard's pipeline metrics to Prometheus.
//
// A [Metrics] is a [guard.Observer]: install it as Guard.Observer (alone or
// in a [guard.Observers] list) and serve [Metrics.Handler] on an internal
// listener. Every metric lives in a registry of its own, never in the
// Prometheus default registry, and every label takes its values from a
// fixed or operator-configured set, so that no request can create new time
// series: unknown MCP methods, tool names that were not registered with
// [Metrics.SetKnownTools] and unrecognised authentication failure reasons
// are all counted as "other".
//
// Metrics, all prefixed "mcpguard_":
//
//	requests_total{method, decision, tool}   counter, one per audit record
//	stage_duration_seconds{stage}            histogram of pipeline stages
//	rate_limited_total{scope}                counter: identity|key|tool|other
//	auth_failures_total{method, reason}      counter, reason from a fixed set
//	audit_write_errors_total                 counter
//	audit_queue_depth                        gauge, when SetAuditQueue was called
//	audit_write_seconds                      histogram
//	upstream_up{upstream}                    gauge, 1 or 0
//
// plus the Go runtime and process collectors.
package metrics

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpguard/mcpguard/guard"
)

const namespace = "mcpguard"

// Label values used when a value is not in its label's bounded set.
const (
	// Other replaces any label value outside the label's known set.
	Other = "other"
	// NoMethod is the method label of records that name no MCP method, such
	// as an HTTP request refused before its body was read.
	NoMethod = "none"
	// UnknownAuthMethod is the method label of authentication failures
	// whose method cannot be told.
	UnknownAuthMethod = "unknown"
)

// defaultStageBuckets are the stage_duration_seconds buckets, in seconds:
// from 10µs (an authorization decision) to 10s (a slow tool call). Read only.
var defaultStageBuckets = []float64{
	0.00001, 0.000025, 0.00005,
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5, 10,
}

// defaultAuditWriteBuckets are the audit_write_seconds buckets, in seconds:
// from 5µs to 1s. Read only.
var defaultAuditWriteBuckets = []float64{
	0.000005, 0.00001, 0.000025, 0.00005,
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1,
}

// knownMethods are the MCP methods given their own method label value, in
// label-index order. Anything else is counted as [Other] (or [NoMethod]
// when empty).
var knownMethods = [...]string{
	"initialize",
	"ping",
	"notifications/initialized",
	"notifications/cancelled",
	"notifications/progress",
	"notifications/message",
	"notifications/roots/list_changed",
	"tools/list",
	"tools/call",
	"resources/list",
	"resources/templates/list",
	"resources/read",
	"resources/subscribe",
	"resources/unsubscribe",
	"prompts/list",
	"prompts/get",
	"completion/complete",
	"logging/setLevel",
	"roots/list",
	"sampling/createMessage",
	"elicitation/create",
	"server/discover",
}

const (
	numMethods     = len(knownMethods) + 2 // + NoMethod, Other
	methodNone     = len(knownMethods)
	methodOther    = len(knownMethods) + 1
	methodToolCall = 8 // index of "tools/call" in knownMethods
)

var methodIndex = func() map[string]int {
	m := make(map[string]int, len(knownMethods))
	for i, name := range knownMethods {
		m[name] = i
	}
	if knownMethods[methodToolCall] != "tools/call" {
		panic("metrics: methodToolCall is out of date")
	}
	return m
}()

func methodLabel(i int) string {
	switch i {
	case methodNone:
		return NoMethod
	case methodOther:
		return Other
	}
	return knownMethods[i]
}

func methodOf(method string) int {
	if method == "" {
		return methodNone
	}
	if i, ok := methodIndex[method]; ok {
		return i
	}
	return methodOther
}

// decisions are the decision label values, in label-index order; the last
// one, Other, counts outcomes this package does not know.
var decisions = [...]string{
	string(guard.Allowed),
	string(guard.Denied),
	string(guard.AuthFailed),
	string(guard.RateLimited),
	string(guard.Failed),
	Other,
}

const numDecisions = len(decisions)

func decisionOf(o guard.Outcome) int {
	switch o {
	case guard.Allowed:
		return 0
	case guard.Denied:
		return 1
	case guard.AuthFailed:
		return 2
	case guard.RateLimited:
		return 3
	case guard.Failed:
		return 4
	}
	return numDecisions - 1
}

// stages are the stage label values, in label-index order.
var stages = [...]guard.Stage{
	guard.StageAuthenticate,
	guard.StageRateLimit,
	guard.StageAuthorize,
	guard.StageExecute,
	guard.StageAudit,
}

// rateLimitScopes are the scope label values of rate_limited_total.
var rateLimitScopes = [...]string{"identity", "key", "tool", Other}

// authMethods are the method label values of auth_failures_total.
var authMethods = [...]string{string(guard.MethodAPIKey), string(guard.MethodJWT), UnknownAuthMethod}

// Options configures [New]. The zero value is ready to use.
type Options struct {
	// KnownTools are tool names given their own tool label value; see
	// [Metrics.SetKnownTools].
	KnownTools []string
	// StageBuckets are the stage_duration_seconds histogram buckets, in
	// seconds; nil means 10µs, 25µs, 50µs, 100µs, … 10s.
	StageBuckets []float64
	// AuditWriteBuckets are the audit_write_seconds histogram buckets, in
	// seconds; nil means 5µs, 10µs, 25µs, 50µs, 100µs, … 1s.
	AuditWriteBuckets []float64
	// NoRuntimeMetrics leaves out the Go runtime and process collectors.
	NoRuntimeMetrics bool
}

// counterSlot caches one child of a CounterVec once it has been resolved,
// so that the request path neither hashes label values nor allocates.
type counterSlot struct {
	c atomic.Pointer[prometheus.Counter]
}

func (s *counterSlot) get(vec *prometheus.CounterVec, method, decision, tool string) prometheus.Counter {
	if c := s.c.Load(); c != nil {
		return *c
	}
	c := vec.WithLabelValues(method, decision, tool)
	s.c.Store(&c) // a racing store stores the same child
	return c
}

// toolTable is an immutable snapshot of the known tools and their cached
// requests_total children for method "tools/call". Index 0 is [Other].
type toolTable struct {
	index map[string]int
	names []string
	slots [][numDecisions]counterSlot
}

// Metrics collects mcpguard's metrics in its own Prometheus registry. It
// implements [guard.Observer]. Its methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	requests     *prometheus.CounterVec
	stageSeconds *prometheus.HistogramVec
	rateLimited  *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	auditErrors  prometheus.Counter
	auditSeconds prometheus.Histogram
	upstreamUp   *prometheus.GaugeVec
	auditQueue   *queueCollector

	// requests_total children: for every method but tools/call, and for
	// tools/call by tool.
	methodSlots [numMethods][numDecisions]counterSlot
	tools       atomic.Pointer[toolTable]
	toolsMu     sync.Mutex // serializes SetKnownTools

	stageEnds       [len(stages)]func(time.Duration)
	otherStageEnd   func(time.Duration)
	rateLimitedBy   [len(rateLimitScopes)]prometheus.Counter
	authFailuresFor [len(authMethods)][numAuthReasons]prometheus.Counter
}

var _ guard.Observer = (*Metrics)(nil)

// New returns Metrics registered in a new registry of their own.
func New(opts Options) *Metrics {
	stageBuckets := opts.StageBuckets
	if stageBuckets == nil {
		stageBuckets = defaultStageBuckets
	}
	auditBuckets := opts.AuditWriteBuckets
	if auditBuckets == nil {
		auditBuckets = defaultAuditWriteBuckets
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "Audited requests by MCP method, decision and tool (tools/call only; unregistered tools are \"other\").",
		}, []string{"method", "decision", "tool"}),
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "stage_duration_seconds",
			Help:      "Duration of the pipeline's stages.",
			Buckets:   stageBuckets,
		}, []string{"stage"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "rate_limited_total",
			Help:      "Requests refused by a rate limit, by the bucket that refused them.",
		}, []string{"scope"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "auth_failures_total",
			Help:      "Failed authentications by method and reason.",
		}, []string{"method", "reason"}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "audit_write_errors_total",
			Help:      "Audit records the sink failed to write.",
		}),
		auditSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "audit_write_seconds",
			Help:      "Time the audit sink took to write a record.",
			Buckets:   auditBuckets,
		}),
		upstreamUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "upstream_up",
			Help:      "Whether an upstream MCP server is reachable (1) or not (0).",
		}, []string{"upstream"}),
		auditQueue: &queueCollector{desc: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "", "audit_queue_depth"),
			"Audit records waiting to be written.", nil, nil)},
	}
	m.reg.MustRegister(m.requests, m.stageSeconds, m.rateLimited, m.authFailures,
		m.auditErrors, m.auditSeconds, m.upstreamUp, m.auditQueue)
	if !opts.NoRuntimeMetrics {
		m.reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}

	// Resolve the fixed-set children now, so that they are exported from
	// the start (at zero) and the request path does not look them up.
	for i, s := range stages {
		h := m.stageSeconds.WithLabelValues(string(s))
		m.stageEnds[i] = func(d time.Duration) { h.Observe(d.Seconds()) }
	}
	m.otherStageEnd = func(d time.Duration) {
		m.stageSeconds.WithLabelValues(Other).Observe(d.Seconds())
	}
	for i, s := range rateLimitScopes {
		m.rateLimitedBy[i] = m.rateLimited.WithLabelValues(s)
	}
	for i, am := range authMethods {
		for j, r := range authReasons {
			m.authFailuresFor[i][j] = m.authFailures.WithLabelValues(am, r)
		}
	}
	m.tools.Store(newToolTable(opts.KnownTools))

	m.handler = promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return m
}

// Registry returns the registry holding the metrics, for a program that
// wants to add collectors of its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the HTTP handler that serves the metrics in the
// Prometheus exposition formats. Serve it on an internal listener: the
// metrics name tools and upstreams.
func (m *Metrics) Handler() http.Handler { return m.handler }

// StartStage implements [guard.Observer]. The returned function observes the
// stage's duration in stage_duration_seconds; it does not allocate.
func (m *Metrics) StartStage(ctx context.Context, s guard.Stage) (context.Context, func(time.Duration)) {
	for i, known := range stages {
		if s == known {
			return ctx, m.stageEnds[i]
		}
	}
	return ctx, m.otherStageEnd
}

// Recorded implements [guard.Observer]: it counts the record in
// requests_total and, depending on its decision, in rate_limited_total or
// auth_failures_total; err counts in audit_write_errors_total.
func (m *Metrics) Recorded(_ context.Context, r *guard.Record, err error) {
	if err != nil {
		m.auditErrors.Inc()
	}
	if r == nil {
		return
	}
	d := decisionOf(r.Decision)
	mi := methodOf(r.Method)
	if mi == methodToolCall {
		t := m.tools.Load()
		ti := t.index[r.Target] // 0, Other, when unknown
		t.slots[ti][d].get(m.requests, knownMethods[methodToolCall], decisions[d], t.names[ti]).Inc()
	} else {
		m.methodSlots[mi][d].get(m.requests, methodLabel(mi), decisions[d], "").Inc()
	}

	switch r.Decision {
	case guard.RateLimited:
		m.rateLimitedBy[rateLimitScope(r.Reason)].Inc()
	case guard.AuthFailed:
		m.authFailuresFor[authMethodOf(r)][classifyAuthFailure(r.Reason)].Inc()
	}
}

// SetKnownTools sets the tool names that get their own tool label value in
// requests_total; calls of any other tool count as tool="other". Pass the
// names of the tools the server (or gateway) offers, never names taken from
// requests. The series of tools no longer in the list are removed.
func (m *Metrics) SetKnownTools(names []string) {
	m.toolsMu.Lock()
	defer m.toolsMu.Unlock()
	next := newToolTable(names)
	prev := m.tools.Swap(next)
	for _, name := range prev.names[1:] {
		if _, ok := next.index[name]; !ok {
			m.requests.DeletePartialMatch(prometheus.Labels{"method": "tools/call", "tool": name})
		}
	}
}

func newToolTable(names []string) *toolTable {
	t := &toolTable{index: make(map[string]int, len(names)), names: []string{Other}}
	for _, name := range names {
		if name == "" || name == Other {
			continue
		}
		if _, dup := t.index[name]; dup {
			continue
		}
		t.index[name] = len(t.names)
		t.names = append(t.names, name)
	}
	t.slots = make([][numDecisions]counterSlot, len(t.names))
	return t
}

// SetAuditQueue makes audit_queue_depth report f(), called at every scrape;
// f must be safe for concurrent use. Nil removes the gauge.
func (m *Metrics) SetAuditQueue(f func() int) {
	if f == nil {
		m.auditQueue.fn.Store(nil)
		return
	}
	m.auditQueue.fn.Store(&f)
}

// ObserveAuditWrite records the time one audit write took in
// audit_write_seconds.
func (m *Metrics) ObserveAuditWrite(d time.Duration) { m.auditSeconds.Observe(d.Seconds()) }

// SetUpstreamUp sets upstream_up{upstream=name} to 1 when up, else 0. name
// must come from configuration, not from requests.
func (m *Metrics) SetUpstreamUp(name string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.upstreamUp.WithLabelValues(name).Set(v)
}

// DeleteUpstream removes the upstream_up series of an upstream that is no
// longer configured.
func (m *Metrics) DeleteUpstream(name string) { m.upstreamUp.DeleteLabelValues(name) }

// queueCollector exports audit_queue_depth from a function set after
// registration; it exports nothing until one is set.
type queueCollector struct {
	desc *prometheus.Desc
	fn   atomic.Pointer[func() int]
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.fn.Load(); f != nil {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64((*f)()))
	}
}

// rateLimitScope returns the index in rateLimitScopes of the scope named by
// a rate-limited record's reason, "rate limit exceeded (<scope>): …".
func rateLimitScope(reason string) int {
	rest, ok := strings.CutPrefix(reason, "rate limit exceeded (")
	if ok {
		if end := strings.IndexByte(rest, ')'); end >= 0 {
			scope := rest[:end]
			for i, s := range rateLimitScopes[:len(rateLimitScopes)-1] {
				if scope == s {
					return i
				}
			}
		}
	}
	return len(rateLimitScopes) - 1
}

// authMethodOf returns the index in authMethods of the method a failed
// authentication used: the record's AuthMethod when it is a known one, else
// the method the reason names (mcpguard's authenticators prefix their
// reasons with "api key:" or "jwt:"), else unknown. The pipeline records no
// AuthMethod for a failed authentication, so the reason is what tells.
func authMethodOf(r *guard.Record) int {
	switch r.AuthMethod {
	case guard.MethodAPIKey:
		return 0
	case guard.MethodJWT:
		return 1
	}
	switch {
	case strings.Contains(r.Reason, "api key:"):
		return 0
	case strings.Contains(r.Reason, "jwt:"):
		return 1
	}
	return 2
}
