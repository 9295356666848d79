package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as a configuration file: Load must never
// panic, and every error must name the file, so the person knows where
// to look.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(string(Example)))
	for _, seed := range []string{"", "server:\n  addr: 127.0.0.1:8080\n", "roles:\n  a: {inherits: [a]}\n", "audit:\n  log: a\n  log: b\n",
		"server:\n\taddr: x\n", "- a\n- b\n", "policies:\n  time_zone: Nowhere\n", "&a [*a]", "auth: {jwt: {keys: [{secret: inline}]}}\n",
		"rate_limit: {requests_per_minute: -1}\n", "? [a]\n: b\n", "x: !!binary aGVsbG8=\n"} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		file, err := os.CreateTemp(dir, "mcpguard-*.yaml") // fuzz workers run in parallel
		if err != nil {
			t.Fatal(err)
		}
		path := file.Name()
		defer os.Remove(path)
		_, err = file.Write(data)
		if cerr := file.Close(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
		cfg, err := Load(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil configuration without an error")
		}
	})
}
