package claims

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestStringList(t *testing.T) {
	for raw, want := range map[string][]string{
		`"a  b c"`:                {"a", "b", "c"},
		`["a", 1, null, "", "b"]`: {"a", "b"},
		`["a","b","c","d"]`:       {"a", "b", "c"},
		`12`:                      nil,
		`{"a":1}`:                 nil,
		`"`:                       nil,
		``:                        nil,
	} {
		got := StringList(json.RawMessage(raw), 3)
		if !slices.Equal(got, want) || cap(got) != len(got) {
			t.Errorf("%s: %q (cap %d), want %q", raw, got, cap(got), want)
		}
	}
}
