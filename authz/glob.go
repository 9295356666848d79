package authz

// Match reports whether s matches pattern, where '*' matches any run of
// characters (including none, and including ':' and '/') and every other
// character matches itself. There are no other metacharacters, so a pattern
// taken from configuration can never be a regular expression in disguise.
// Matching is linear in len(pattern)+len(s) up to backtracking to the last
// star, which bounds it by O(len(pattern)·len(s)).
func Match(pattern, s string) bool { return match(pattern, s) }

// match is Match for a subject held in a string or in bytes.
func match[S string | []byte](pattern string, s S) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
