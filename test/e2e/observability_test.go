package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// scrape GETs /metrics with h and returns the status and body.
func scrape(t *testing.T, s *server, h http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", strings.TrimSuffix(s.url, "/mcp")+"/metrics", nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the sample whose name and labels match
// exactly, or -1.
func metricValue(body, sample string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetricsReflectScriptedCalls(t *testing.T) {
	dir := t.TempDir()
	traces := filepath.Join(dir, "traces.json")
	cfg := writeConfig(t, dir, "tracing:\n  enabled: true\n  file: "+traces+"\n")
	s := start(t, dir, nil, "--config", cfg, "--demo")
	ctx := context.Background()

	dev := mustConnect(t, s.url, bearer(s.keys["developer"]))
	for range 3 {
		if _, err := dev.CallTool(ctx, &mcp.CallToolParams{Name: "list_tables", Arguments: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := dev.CallTool(ctx, &mcp.CallToolParams{Name: "delete_users", Arguments: map[string]any{"ids": []int{1}}}); err != nil {
			t.Fatal(err)
		}
	}
	post(t, s.url, bearer("mcp_0000000000000000_"+strings.Repeat("A", 43)), initBody)

	if code, _ := scrape(t, s, nil); code != 401 {
		t.Fatalf("/metrics without a credential: %d", code)
	}
	if code, _ := scrape(t, s, bearer(s.keys["viewer"])); code != 403 {
		t.Fatalf("/metrics as viewer: %d", code)
	}
	code, body := scrape(t, s, bearer(s.keys["admin"]))
	if code != 200 {
		t.Fatalf("/metrics as admin: %d", code)
	}
	for sample, want := range map[string]float64{
		`mcpguard_requests_total{decision="ALLOWED",method="tools/call",tool="list_tables"}`: 3,
		`mcpguard_requests_total{decision="DENIED",method="tools/call",tool="delete_users"}`: 2,
		`mcpguard_auth_failures_total{method="api_key",reason="unknown_key"}`:                1,
	} {
		if got := metricValue(body, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if metricValue(body, `mcpguard_stage_duration_seconds_count{stage="execute"}`) < 3 {
		t.Errorf("execute stage not measured:\n%s", grepLines(body, "stage_duration_seconds_count"))
	}

	// Spans reach the trace file, one per stage, nested in the request.
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(traces)
		if strings.Contains(string(data), `"mcpguard.authorize"`) && strings.Contains(string(data), `"mcpguard.execute"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stage spans in %s:\n%.2000s", traces, data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func grepLines(body, sub string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
