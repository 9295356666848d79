package main

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpguard/mcpguard/internal/config"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 1..100", hundred, 100, 100 * time.Millisecond},
		{"p50 of four rounds up", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p51 of four", ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{"tiny p is the minimum", ms(1, 2, 3, 4), 0.1, 1 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestSummarizeSorts(t *testing.T) {
	lat := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	var r loadResult
	r.summarize(lat)
	if r.P50 != 5 || r.P90 != 9 || r.P99 != 10 {
		t.Fatalf("p50/p90/p99 = %v/%v/%v, want 5/9/10", r.P50, r.P90, r.P99)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	stat := "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194304 100 0 0 0 1234 567 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 1234+567 {
		t.Fatalf("ticks = %d, want %d", got, 1234+567)
	}
	for _, bad := range []string{"", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\tmcpguard\nVmPeak:\t  900000 kB\nVmHWM:\t   31744 kB\nVmRSS:\t   30000 kB\nThreads:\t8\n"
	for field, want := range map[string]uint64{"VmHWM": 31744, "VmRSS": 30000} {
		got, err := parseStatusKiB([]byte(status), field)
		if err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", field, got, err, want)
		}
	}
	if _, err := parseStatusKiB([]byte(status), "VmSwap"); err == nil {
		t.Error("missing field: no error")
	}
	if _, err := parseStatusKiB([]byte("VmRSS:\t12 MB\n"), "VmRSS"); err == nil {
		t.Error("unexpected unit: no error")
	}
}

func TestReadOwnProcess(t *testing.T) {
	pid := os.Getpid()
	if _, err := readCPU(pid); err != nil {
		t.Fatal(err)
	}
	rss, err := readStatusKiB(pid, "VmRSS")
	if err != nil || rss == 0 {
		t.Fatalf("VmRSS = %d, %v", rss, err)
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got := cpuModel([]byte(info)); got != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Fatalf("cpuModel = %q", got)
	}
	if got := cpuModel(nil); got != "unknown" {
		t.Fatalf("cpuModel(nil) = %q", got)
	}
}

func TestRenderLoadTable(t *testing.T) {
	vs := variants()
	results := []loadResult{
		{Variant: vs[0], Calls: 1000, Wall: time.Second, P50: 2 * time.Millisecond, P90: 3 * time.Millisecond, P99: 4 * time.Millisecond, ServerCPU: 0.5, ClientCPU: 0.25, PeakRSSKiB: 20 * 1024},
		{Variant: vs[1], Calls: 1000, Errors: 3, Wall: 2 * time.Second, P50: 2500 * time.Microsecond, P90: 5 * time.Millisecond, P99: 9 * time.Millisecond, ServerCPU: 1, ClientCPU: 0.25, PeakRSSKiB: 30 * 1024},
		{Variant: vs[4], ServerError: "exited | badly\nhere"},
	}
	var b strings.Builder
	if err := renderLoadTable(&b, results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, rule and 3 rows, got %d lines:\n%s", len(lines), b.String())
	}
	cols := strings.Count(lines[0], "|")
	for i, l := range lines {
		if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n != cols {
			t.Errorf("line %d has %d cell separators, header %d: %s", i, n, cols, l)
		}
	}
	for _, want := range []string{
		"| (a) unsecured go-sdk | none | 1000 | 0 | 1000 | 1.00 | 2.00 | 3.00 | 4.00 | +0 | 0.500 | 0.250 | 20.0 |",
		"| (b) mcpguard API key | file, async batched (durable: false) | 1000 | 3 | 500 | 0.50 | 2.50 | 5.00 | 9.00 | +500 | 1.000 | 0.250 | 30.0 |",
		`failed: exited \| badly here`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestRenderLoadTableWithoutBaseline(t *testing.T) {
	var b strings.Builder
	r := loadResult{Variant: variants()[2], Calls: 10, Wall: time.Second}
	if err := renderLoadTable(&b, []loadResult{r}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| 10 | – | ") {
		t.Fatalf("ratio without a baseline should be –:\n%s", b.String())
	}
}

func TestRenderIdleTable(t *testing.T) {
	r := idleResult{Variant: variants()[2], Requested: 1000, Opened: 1000, RSSBeforeKiB: 30 * 1024, RSSAfterKiB: 30*1024 + 6000, HWMKiB: 40 * 1024, OpenTime: 2 * time.Second}
	if got := r.perSessionKiB(); got != 6 {
		t.Fatalf("perSessionKiB = %v, want 6", got)
	}
	var b strings.Builder
	if err := renderIdleTable(&b, r); err != nil {
		t.Fatal(err)
	}
	// 30 MiB + 6 KiB × 10,000 ≈ 88.6 MiB: both targets met.
	if !strings.Contains(b.String(), "| 6.00 (met) | 89 (met) |") {
		t.Fatalf("unexpected idle table:\n%s", b.String())
	}
	r.RSSAfterKiB = 30*1024 + 20000
	b.Reset()
	if err := renderIdleTable(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| 20.00 (missed) | 225 (missed) |") {
		t.Fatalf("unexpected idle table:\n%s", b.String())
	}
}

func TestSelectVariants(t *testing.T) {
	got, err := selectVariants(" d, a ,c2")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, v := range got {
		keys = append(keys, v.Key)
	}
	if strings.Join(keys, ",") != "a,c2,d" {
		t.Fatalf("keys = %v, want table order a,c2,d", keys)
	}
	for _, bad := range []string{"", ",", "a,e"} {
		if _, err := selectVariants(bad); err == nil {
			t.Errorf("selectVariants(%q) succeeded", bad)
		}
	}
}

// TestMCPGuardConfigIsValid checks every generated configuration against
// mcpguard's own configuration parser and the settings the table claims.
func TestMCPGuardConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "jwt.pub")
	if err := os.WriteFile(pub, []byte("unused"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range variants() {
		if v.Kind == kindUnsecured {
			continue
		}
		lo := launchOptions{Postgres: "postgres://localhost/x", Redis: "redis://localhost:6379/0"}
		cfg, err := config.Parse(v.Key+".yaml", []byte(mcpguardConfig(v, dir, pub, lo)), nil)
		if err != nil {
			t.Fatalf("variant %s: %v\n%s", v.Key, err, mcpguardConfig(v, dir, pub, lo))
		}
		if cfg.Audit.Durable != v.Durable {
			t.Errorf("variant %s: durable = %t, want %t", v.Key, cfg.Audit.Durable, v.Durable)
		}
		if cfg.RateLimit.RequestsPerMinute != benchRequestsPerMinute || !cfg.RateLimit.Enabled {
			t.Errorf("variant %s: rate limit %+v", v.Key, cfg.RateLimit)
		}
		if cfg.Audit.Log != filepath.Join(dir, "audit.log") || cfg.DataDir != filepath.Join(dir, "data") {
			t.Errorf("variant %s: audit log %q, data dir %q", v.Key, cfg.Audit.Log, cfg.DataDir)
		}
		if cfg.Auth.APIKeys.Enabled != (v.Kind == kindAPIKey) || cfg.Auth.JWT.Enabled != (v.Kind == kindJWT) {
			t.Errorf("variant %s: api keys %t, jwt %t", v.Key, cfg.Auth.APIKeys.Enabled, cfg.Auth.JWT.Enabled)
		}
		if v.Kind == kindJWT && (len(cfg.Auth.JWT.Keys) != 1 || cfg.Auth.JWT.Keys[0].Alg != v.Alg) {
			t.Errorf("variant %s: jwt keys %+v", v.Key, cfg.Auth.JWT.Keys)
		}
	}
}

func TestTokenSigner(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		s, err := newTokenSigner(alg)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		tok, err := s.token("bench-7", now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(s.PublicPEM)
		if block == nil {
			t.Fatalf("%s: public key is not PEM", alg)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Headers[0].KeyID != jwtKeyID {
			t.Errorf("%s: kid %q", alg, parsed.Headers[0].KeyID)
		}
		var c benchClaims
		if err := parsed.Claims(pub, &c); err != nil {
			t.Fatalf("%s: signature does not verify with the published key: %v", alg, err)
		}
		if err := c.ValidateWithLeeway(josejwt.Expected{Issuer: jwtIssuer, AnyAudience: josejwt.Audience{jwtAudience}, Subject: "bench-7", Time: now}, 0); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
		if len(c.Roles) != 1 || c.Roles[0] != jwtRole {
			t.Errorf("%s: roles %v", alg, c.Roles)
		}
	}
	if _, err := newTokenSigner("HS256"); err == nil {
		t.Error("HS256 signer: no error")
	}
}

func TestAuthTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	tr := newHTTPTransport(4)
	defer tr.CloseIdleConnections()
	for _, value := range []string{"Bearer abc", ""} {
		req, err := http.NewRequest("GET", srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Keep", "1")
		resp, err := (&http.Client{Transport: authTransport{value: value, base: tr}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != value {
			t.Errorf("server saw Authorization %q, want %q", body, value)
		}
		if req.Header.Get("Authorization") != "" || req.Header.Get("X-Keep") != "1" {
			t.Errorf("the caller's request was modified: %v", req.Header)
		}
	}
}

func TestTransportDialsOnlyLoopback(t *testing.T) {
	tr := newHTTPTransport(1)
	defer tr.CloseIdleConnections()
	_, err := tr.DialContext(t.Context(), "tcp", "192.0.2.1:80")
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("dial to a non-loopback address: %v", err)
	}
	if err := checkLoopbackURL("http://10.0.0.1:8080/mcp"); err == nil {
		t.Error("checkLoopbackURL accepted 10.0.0.1")
	}
	if err := checkLoopbackURL("http://127.0.0.1:8080/mcp"); err != nil {
		t.Error(err)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Sessions != 64 || o.Calls != 200 || o.Warmup != 10 || o.Variant != "c" || o.Idle != 0 {
		t.Fatalf("defaults: %+v", o)
	}
	for _, bad := range [][]string{
		{"-sessions", "0"},
		{"-calls", "-1"},
		{"-idle", "1000000"},
		{"-timeout", "0s"},
		{"-sessions", "10000", "-calls", "10000"},
		{"extra"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}
