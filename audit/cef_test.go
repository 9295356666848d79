package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

func TestExportCEF(t *testing.T) {
	t.Parallel()
	recs := []guard.Record{
		{
			Time: time.UnixMilli(1735787045123).UTC(), Decision: guard.Denied, Subject: "bob",
			Method: "tools/call", Target: "evil|tool\\x", ClientAddr: "192.0.2.7:4242",
			Reason: "a=b\nDENIED forged\r\\", RequestID: "r1", Roles: []string{"dev", "viewer"},
			Duration: 1500, ArgsDigest: "ab12",
		},
		{Decision: guard.Allowed, Subject: "x\x1b[2J\u202e", Method: "tools/list", ToolError: true},
		{Decision: guard.AuthFailed, ClientAddr: "not-an-ip"},
	}
	var buf bytes.Buffer
	if err := (CEF{Version: "1.2|3"}).Export(&buf, recs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	want0 := `CEF:0|mcpguard|mcpguard|1.2\|3|DENIED|tools/call evil\|tool\\x|6|rt=1735787045123 act=DENIED suser=bob src=192.0.2.7 ` +
		`reason=a\=b\nDENIED forged\r\\ externalId=r1 cs2Label=roles cs2=dev,viewer cs6Label=argsSha256 cs6=ab12 cn1Label=durationNs cn1=1500`
	if lines[0] != want0 {
		t.Errorf("line 0\n got %s\nwant %s", lines[0], want0)
	}
	want1 := `CEF:0|mcpguard|mcpguard|1.2\|3|ALLOWED|tools/list|4|act=ALLOWED suser=x\u001b[2J\u202e`
	if lines[1] != want1 {
		t.Errorf("line 1\n got %s\nwant %s", lines[1], want1)
	}
	if !strings.HasPrefix(lines[2], `CEF:0|mcpguard|mcpguard|1.2\|3|AUTH_FAILED|AUTH_FAILED|7|act=AUTH_FAILED`) || strings.Contains(lines[2], "src=") {
		t.Errorf("line 2: %s", lines[2])
	}
	// Default version.
	buf.Reset()
	if err := ExportCEF(&buf, recs[:1]); err != nil || !strings.HasPrefix(buf.String(), "CEF:0|mcpguard|mcpguard|") {
		t.Fatalf("ExportCEF: %q, %v", buf.String(), err)
	}
	if err := ExportCEF(failWriter{}, recs); err == nil {
		t.Fatal("failing writer: want error")
	}
}
