//go:build ignore

// Command update refreshes the snapshot of the Go vulnerability database
// that .ci/run gives govulncheck when https://vuln.go.dev is out of reach
// (CI machines here reach only the module proxy, Debian and npm).
//
// Usage, from the repository root, with a checkout of
// https://github.com/golang/vulndb:
//
//	go run .ci/vulndb/update.go /path/to/vulndb
//
// It keeps the OSV entries (data/osv/GO-*.json) that concern the standard
// library, the toolchain, or a module in `go list -m all`, writes them to
// .ci/vulndb/osv, records the modules it filtered for in
// .ci/vulndb/modules.txt (so .ci/run notices a module added since) and the
// vulndb commit in .ci/vulndb/SNAPSHOT.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// osvEntry is the part of an OSV entry the filter reads.
type osvEntry struct {
	Affected []osvAffected `json:"affected"`
}

type osvAffected struct {
	Package struct {
		Name string `json:"name"`
	} `json:"package"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run .ci/vulndb/update.go /path/to/golang/vulndb")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb update:", err)
		os.Exit(1)
	}
}

func run(vulndb string) error {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}}", "all").Output()
	if err != nil {
		return fmt.Errorf("go list -m all: %w", err)
	}
	modules := strings.Fields(string(out))
	want := map[string]bool{"stdlib": true, "toolchain": true}
	for _, m := range modules {
		want[m] = true
	}

	src := filepath.Join(vulndb, "data", "osv")
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("reading the OSV entries: %w", err)
	}
	dst := filepath.Join(".ci", "vulndb", "osv")
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	kept := 0
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		var entry osvEntry
		if err := json.Unmarshal(b, &entry); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
		if !slices.ContainsFunc(entry.Affected, func(a osvAffected) bool { return want[a.Package.Name] }) {
			continue
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
		kept++
	}

	if err := os.WriteFile(filepath.Join(".ci", "vulndb", "modules.txt"),
		[]byte(strings.Join(modules, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	rev, err := exec.Command("git", "-C", vulndb, "log", "-1", "--format=%H %cs").Output()
	if err != nil {
		return fmt.Errorf("reading the vulndb commit: %w", err)
	}
	snapshot := fmt.Sprintf("golang/vulndb %s\n%d OSV entries of %d kept\n", bytes.TrimSpace(rev), kept, len(entries))
	if err := os.WriteFile(filepath.Join(".ci", "vulndb", "SNAPSHOT"), []byte(snapshot), 0o644); err != nil {
		return err
	}
	fmt.Print(snapshot)
	return nil
}
