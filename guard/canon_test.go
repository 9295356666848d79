package guard

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// canonInputs are tool arguments for the canonicalization tests: some that
// canonicalize takes, and some that it leaves to encoding/json.
var canonInputs = []string{
	`{}`, ` { } `, `{"a":1}`, `{"b":1,"a":2}`, `{"table":"users","limit":10,"where":{"id":[1,2,3]}}`,
	`{"z":{"y":[{"b":true,"a":false}],"x":null},"a":[]}`, `{"s":"<script>&amp;</script>","k<":"v>"}`,
	"{\"sep\":\"a\u2028b\u2029c\",\"bidi\":\"\u202e\"}", `{"n":-0,"m":0.1,"e":1e-7,"E":1E+21,"f":123456789012345678901234,"g":-1.5e-300}`,
	`{"big":1e400}`, `{"small":1e-400}`, `{"dup":1,"dup":2}`, `{"b":1,"a":2,"b":3}`, `{"esc":"a\"b"}`, `{"u":"\u00e9"}`,
	`{"k\n":1}`, "{\"bad\":\"\xff\"}", "{\"ctl\":\"a\tb\"}", `[1,2]`, `"str"`, `null`, ` null`, `1`, `{"a":1} x`, `{"a":1}{}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a" 1}`, `{"a":1,}`,
	`{,}`, `{"a":[1,]}`, `{"a":[,1]}`, `{`, `{"a":`, `{"a"`, `{"a":"`, `{"a":[`, `{"a":{}`, "\t{\"a\" :\r\n[ 1 , 2 ]}\n",
	`{"x":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`, `{"x":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}`,
	`{"long":"` + strings.Repeat("é", 300) + `","table":"` + strings.Repeat("t", 300) + `"}`,
	`{"table":{"b":[1,"x"],"a":"<"},"limit":2.50,"flag":true,"none":null}`, `{"table":true}`, `{"table":null}`, `{"table":12e3}`,
	`{"a":1234567890123456789012345678901234567890123456789012345678901234567890}`, `{"日本":"語","é":1,"e":2}`,
}

func TestSummarizeArgsMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	g := &Guard{ArgumentFields: []string{"table", "limit", "flag", "none", "long", "x", "missing"}}
	for _, in := range canonInputs {
		checkSummary(t, g, in)
	}
	// The usual arguments take the fast path.
	var s canonScratch
	for _, in := range []string{`{"table":"users","limit":10,"where":{"id":[1,2,3]}}`, `{"b":1,"a":[true,null,"<"]}`} {
		if !canonicalize([]byte(in), &s) {
			t.Errorf("canonicalize(%s) declined", in)
		}
	}
}

func checkSummary(t *testing.T, g *Guard, in string) {
	t.Helper()
	digest, fields := g.summarizeArgs(json.RawMessage(in))
	wantDigest, wantFields := g.summarizeArgsSlow(json.RawMessage(in))
	if in == "" || in == "null" {
		wantDigest, wantFields = "", nil
	}
	if digest != wantDigest || !reflect.DeepEqual(fields, wantFields) {
		t.Fatalf("summarizeArgs(%q) = %s, %#v\nencoding/json gives %s, %#v", in, digest, fields, wantDigest, wantFields)
	}
}

// FuzzSummarizeArgs checks the canonicalization of arguments against the
// round trip through encoding/json that defines it.
func FuzzSummarizeArgs(f *testing.F) {
	for _, in := range canonInputs {
		f.Add(in)
	}
	g := &Guard{ArgumentFields: []string{"table", "a", "b", ""}}
	f.Fuzz(func(t *testing.T, in string) {
		checkSummary(t, g, in)
	})
}

func TestSummarizeArgsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful with the race detector")
	}
	g := &Guard{}
	raw := json.RawMessage(`{"table":"users","limit":10,"where":{"id":[1,2,3]}}`)
	g.summarizeArgs(raw)
	if n := testing.AllocsPerRun(100, func() { g.summarizeArgs(raw) }); n > 1 {
		t.Errorf("summarizeArgs without allow-listed fields: %v allocations, want 1 (the digest)", n)
	}
}
