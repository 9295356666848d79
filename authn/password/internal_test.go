package password

import (
	"strings"
	"testing"
)

// The dummy hash must cost what a fresh hash costs.
func TestDummyHashHasCurrentParameters(t *testing.T) {
	if _, err := parse(dummyHash); err != nil {
		t.Fatal(err)
	}
	if NeedsRehash(dummyHash) {
		t.Fatal("dummyHash has other parameters than Hash uses")
	}
}

// FuzzParse checks that parse never panics and accepts only canonical PHC
// strings: whatever it accepts, it formats back to the same string.
func FuzzParse(f *testing.F) {
	good, err := Hash("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(dummyHash)
	f.Add(strings.Replace(good, "m=19456", "m=019456", 1))
	f.Add(strings.Replace(good, "$v=19", "", 1))
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parse(s)
		if err != nil {
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("parse accepted %q, a non-canonical form of %q", s, got)
		}
		if p.memory > maxMemoryKiB || p.passes > maxPasses || p.lanes > maxLanes {
			t.Fatalf("parse accepted out-of-bounds parameters: %q", s)
		}
	})
}
