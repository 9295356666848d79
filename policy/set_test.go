package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

func TestReadDirRefusesWhatIsNotAPolicyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.cedar")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a device behind a .cedar name: %v", err)
	}
	os.Remove(filepath.Join(dir, "zero.cedar"))
	big := make([]byte, maxPolicyBytes+1)
	if err := os.WriteFile(filepath.Join(dir, "big.cedar"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("an oversized file: %v", err)
	}
	if _, err := ReadDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing directory was read")
	}
}

// TestWatchKeepsTheSetOnErrors checks the watcher end to end: a change is
// put in force, a file that does not compile is not, and the set in force
// stays whole.
func TestWatchKeepsTheSetOnErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.cedar", `@id("no-drop") forbid(principal, action, resource == Tool::"drop_table");`)
	set, err := NewSet(Options{RBAC: seedRBAC}, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	set.OnError = func(err error) { errs <- err }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go set.Watch(ctx, 20*time.Millisecond)

	admin := &guard.Principal{Subject: "ann", Method: guard.MethodAPIKey, Roles: []string{"admin"}}
	allowed := func(tool string) bool {
		return set.Authorize(context.Background(), admin, guard.Action{Method: "tools/call", Target: tool}).Allowed
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if allowed("drop_table") || !allowed("list_tables") {
		t.Fatal("the first set is not in force")
	}
	write("b.cedar", `@id("no-list") forbid(principal, action, resource == Tool::"list_tables");`)
	waitUntil("the new file", func() bool { return !allowed("list_tables") })
	write("c.cedar", `permit(principal, action, resource) when { context. };`)
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "c.cedar") {
			t.Fatalf("error does not name the file: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the broken file was not reported")
	}
	if allowed("drop_table") || allowed("list_tables") {
		t.Fatal("a broken file changed the set in force")
	}
}
