package tools

import "strings"

// Token classes and states of the statement splitter. The state machine is a
// port of SQLite's sqlite3_complete (src/complete.c), which knows that the
// semicolons inside a CREATE TRIGGER ... BEGIN ... END body do not end the
// statement.
const (
	tkSemi = iota
	tkWS
	tkOther
	tkExplain
	tkCreate
	tkTemp
	tkTrigger
	tkEnd
)

// transition is sqlite3_complete's transition table: the state after token
// class tok in state. State 1 means "between statements".
func transition(state uint8, tok int) uint8 {
	table := [8][8]uint8{
		/* 0 INVALID: */ {1, 0, 2, 3, 4, 2, 2, 2},
		/* 1   START: */ {1, 1, 2, 3, 4, 2, 2, 2},
		/* 2  NORMAL: */ {1, 2, 2, 2, 2, 2, 2, 2},
		/* 3 EXPLAIN: */ {1, 3, 3, 2, 4, 2, 2, 2},
		/* 4  CREATE: */ {1, 4, 2, 2, 2, 4, 5, 2},
		/* 5 TRIGGER: */ {6, 5, 5, 5, 5, 5, 5, 5},
		/* 6    SEMI: */ {6, 6, 5, 5, 5, 5, 5, 7},
		/* 7     END: */ {1, 7, 5, 5, 5, 5, 5, 5},
	}
	return table[state][tok]
}

// countStatements reports how many SQL statements text holds, following
// SQLite's tokenizer rules for quotes, comments and trigger bodies. Empty
// statements (stray semicolons, comments, whitespace) are not counted. An
// unterminated quote or block comment counts as part of the current statement,
// so SQLite itself reports the syntax error.
func countStatements(text string) int {
	state := uint8(0)
	count := 0
	inStmt := false
	for i := 0; i < len(text); {
		tok, n := nextToken(text[i:])
		i += n
		if tok != tkSemi && tok != tkWS && !inStmt {
			inStmt = true
			count++
		}
		state = transition(state, tok)
		if state == 1 {
			inStmt = false
		}
	}
	return count
}

// nextToken classifies the token at the start of s and returns its length.
func nextToken(s string) (tok int, n int) {
	c := s[0]
	switch {
	case c == ';':
		return tkSemi, 1
	case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
		return tkWS, 1
	case c == '/' && len(s) > 1 && s[1] == '*':
		end := strings.Index(s[2:], "*/")
		if end < 0 {
			return tkOther, len(s)
		}
		return tkWS, end + 4
	case c == '-' && len(s) > 1 && s[1] == '-':
		end := strings.IndexByte(s, '\n')
		if end < 0 {
			return tkWS, len(s)
		}
		return tkWS, end + 1
	case c == '[':
		end := strings.IndexByte(s[1:], ']')
		if end < 0 {
			return tkOther, len(s)
		}
		return tkOther, end + 2
	case c == '\'' || c == '"' || c == '`':
		// A doubled quote inside the string is an escaped quote; scanning
		// to the next quote and continuing handles it as two adjacent
		// strings, which classify the same.
		end := strings.IndexByte(s[1:], c)
		if end < 0 {
			return tkOther, len(s)
		}
		return tkOther, end + 2
	case isIDChar(c):
		n = 1
		for n < len(s) && isIDChar(s[n]) {
			n++
		}
		switch strings.ToLower(s[:n]) {
		case "create":
			return tkCreate, n
		case "trigger":
			return tkTrigger, n
		case "temp", "temporary":
			return tkTemp, n
		case "end":
			return tkEnd, n
		case "explain":
			return tkExplain, n
		}
		return tkOther, n
	default:
		return tkOther, 1
	}
}

// isIDChar reports whether c can be part of an SQL identifier or keyword, as
// SQLite's IdChar does: ASCII letters, digits, '_', '$' and every byte of a
// multi-byte UTF-8 sequence.
func isIDChar(c byte) bool {
	return c >= 0x80 || c == '_' || c == '$' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
