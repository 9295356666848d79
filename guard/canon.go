package guard

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/internal/jsonx"
)

// The canonical form of tool arguments (see [Guard.summarizeArgs]) is what
// encoding/json makes of them when it decodes them into a map[string]any
// and encodes that map again: object keys sorted, numbers as float64 in
// encoding/json's format, strings with HTML characters, U+2028 and U+2029
// escaped, no whitespace. appendCanonical computes it without decoding into
// maps of interfaces, for the arguments clients usually send; it declines
// whatever it cannot reproduce exactly (escapes in strings, invalid UTF-8,
// duplicate keys, deep nesting, numbers out of range, invalid JSON), which
// summarizeArgs then canonicalizes the slow way.

// maxCanonDepth bounds the nesting appendCanonical handles.
const maxCanonDepth = 64

// canonScratch is the pooled working memory of appendCanonical.
type canonScratch struct {
	out     []byte
	tmp     []byte
	members []member
}

// member is one member of an object being canonicalized: the spans of its
// key's characters and of its value in the input (which holds the key
// verbatim), and of its canonical value in the output.
type member struct {
	keyStart, keyEnd int
	inStart, inEnd   int
	start, end       int
}

var canonPool = sync.Pool{New: func() any { return &canonScratch{out: make([]byte, 0, 256)} }}

// maxKeptCanon bounds the buffers kept in canonPool.
const maxKeptCanon = 64 << 10

// canonParser canonicalizes one JSON text.
type canonParser struct {
	in  []byte
	pos int
	s   *canonScratch
}

// canonicalize writes the canonical form of raw, which must be a JSON
// object, to s.out, and reports whether it could. On success s.members
// holds the object's members, sorted by key.
func canonicalize(raw []byte, s *canonScratch) bool {
	s.out, s.members = s.out[:0], s.members[:0]
	p := canonParser{in: raw, s: s}
	p.space()
	if p.peek() != '{' || !p.object(1) {
		return false
	}
	p.space()
	return p.pos == len(raw)
}

// key returns the key of m.
func (p *canonParser) key(m *member) []byte { return p.in[m.keyStart:m.keyEnd] }

// object canonicalizes the object at p.pos. Its members are left at the end
// of p.s.members when depth is 1 and removed otherwise.
func (p *canonParser) object(depth int) bool {
	if depth > maxCanonDepth {
		return false
	}
	p.pos++ // '{'
	s := p.s
	s.out = append(s.out, '{')
	base := len(s.members)
	if depth > 1 {
		defer func() { s.members = s.members[:base] }()
	}
	p.space()
	if p.peek() == '}' {
		p.pos++
		s.out = append(s.out, '}')
		return true
	}
	for {
		if p.peek() != '"' {
			return false
		}
		keyStart := p.pos + 1
		if _, ok := p.rawString(); !ok {
			return false
		}
		keyEnd := p.pos - 1
		p.space()
		if p.peek() != ':' {
			return false
		}
		p.pos++
		p.space()
		start, inStart := len(s.out), p.pos
		if !p.value(depth) {
			return false
		}
		s.members = append(s.members, member{keyStart: keyStart, keyEnd: keyEnd, inStart: inStart, inEnd: p.pos, start: start, end: len(s.out)})
		p.space()
		switch p.peek() {
		case ',':
			p.pos++
			p.space()
			continue
		case '}':
			p.pos++
		default:
			return false
		}
		break
	}
	ms := s.members[base:]
	sorted := true
	compare := func(a, b member) int { return bytes.Compare(p.key(&a), p.key(&b)) }
	for i := 1; i < len(ms); i++ {
		switch c := compare(ms[i-1], ms[i]); {
		case c == 0:
			return false // a duplicate key: encoding/json keeps the last
		case c > 0:
			sorted = false
		}
	}
	if !sorted {
		slices.SortFunc(ms, compare)
		for i := 1; i < len(ms); i++ {
			if compare(ms[i-1], ms[i]) == 0 {
				return false
			}
		}
	}
	// Write the members, keys and values, after the '{'.
	// The values were written one after the other, from first.
	first := ms[0].start
	for i := range ms {
		first = min(first, ms[i].start)
	}
	s.tmp = append(s.tmp[:0], s.out[first:]...)
	s.out = s.out[:first]
	for i := range ms {
		m := &ms[i]
		if i > 0 {
			s.out = append(s.out, ',')
		}
		s.out = appendHTMLSafeString(s.out, p.key(m))
		s.out = append(s.out, ':')
		start := len(s.out)
		s.out = append(s.out, s.tmp[m.start-first:m.end-first]...)
		m.start, m.end = start, len(s.out) // the span in the final output
	}
	s.out = append(s.out, '}')
	return true
}

func (p *canonParser) value(depth int) bool {
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		v, ok := p.rawString()
		if ok {
			p.s.out = appendHTMLSafeString(p.s.out, v)
		}
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

func (p *canonParser) array(depth int) bool {
	if depth > maxCanonDepth {
		return false
	}
	p.pos++ // '['
	p.s.out = append(p.s.out, '[')
	p.space()
	if p.peek() == ']' {
		p.pos++
		p.s.out = append(p.s.out, ']')
		return true
	}
	for {
		if !p.value(depth) {
			return false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.pos++
			p.space()
			p.s.out = append(p.s.out, ',')
		case ']':
			p.pos++
			p.s.out = append(p.s.out, ']')
			return true
		default:
			return false
		}
	}
}

func (p *canonParser) literal(lit string) bool {
	if !bytes.HasPrefix(p.in[p.pos:], []byte(lit)) {
		return false
	}
	p.pos += len(lit)
	p.s.out = append(p.s.out, lit...)
	return true
}

// number copies a JSON number as encoding/json re-encodes the float64 it
// decodes to.
func (p *canonParser) number() bool {
	start := p.pos
	in := p.in
	i := p.pos
	if i < len(in) && in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && in[i] >= '1' && in[i] <= '9':
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(in) && in[i] == '.' {
		i++
		d := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		d := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	var buf [64]byte
	if i-start > len(buf) {
		return false
	}
	f, err := strconv.ParseFloat(string(append(buf[:0], in[start:i]...)), 64)
	if err != nil {
		return false
	}
	p.pos = i
	p.s.out = jsonx.AppendFloat(p.s.out, f)
	return true
}

// rawString reads a string literal without escapes, in valid UTF-8, and
// returns its value, which shares the input's memory.
func (p *canonParser) rawString() ([]byte, bool) {
	in := p.in
	for i := p.pos + 1; i < len(in); i++ {
		switch c := in[i]; {
		case c == '"':
			v := in[p.pos+1 : i]
			if !utf8.Valid(v) {
				return nil, false
			}
			p.pos = i + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

func (p *canonParser) peek() byte {
	if p.pos < len(p.in) {
		return p.in[p.pos]
	}
	return 0
}

func (p *canonParser) space() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// appendHTMLSafeString appends valid UTF-8 s, which holds no control
// characters, '"' or '\\', as encoding/json quotes it by default: with <, >,
// &, U+2028 and U+2029 escaped.
func appendHTMLSafeString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<', '>', '&':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			start = i + 1
		case 0xe2:
			if i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xa8 {
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hex[s[i+2]&0xf])
				i += 2
				start = i + 1
			}
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
