// Package claims reads the claims that identity providers shape in more
// than one way, for the JWT and introspection authenticators alike.
package claims

import (
	"encoding/json"
	"slices"
	"strings"
)

// StringList reads a claim holding either a space-separated string or an
// array of strings (roles, scopes, groups). Non-string array entries and
// empty strings are skipped, and at most max entries are kept. The result's
// capacity is its length, so that appending to it (to a shared, cached
// Principal's roles, say) copies rather than writes into it.
func StringList(v json.RawMessage, max int) []string {
	if len(v) == 0 {
		return nil
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		out := strings.Fields(s)
		return slices.Clip(out[:min(len(out), max)])
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return nil
		}
		out := make([]string, 0, min(len(items), max))
		for _, item := range items {
			if len(out) == max {
				break
			}
			var s string
			if len(item) == 0 || item[0] != '"' || json.Unmarshal(item, &s) != nil || s == "" {
				continue
			}
			out = append(out, s)
		}
		return slices.Clip(out)
	}
	return nil
}
