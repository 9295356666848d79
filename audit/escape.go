package audit

import "unicode/utf8"

// The log escapes, besides what JSON requires, characters that JSON allows
// raw but that a terminal or another line-oriented reader may act on: DEL,
// the C1 controls U+0080–U+009F (U+009B is a one-character CSI), the line
// and paragraph separators U+2028 and U+2029, and the bidirectional
// formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069). Each is written as its \u escape.
//
// This is sound because in JSON text every byte outside the ASCII range, and
// DEL, can only occur inside a string literal, where a \u escape stands for
// the same character: decoding the line gives the original values.

// maxKeptBuf bounds the buffers kept between records.
const maxKeptBuf = 64 << 10

// appendEscaped appends JSON text p to dst with the characters listed above
// replaced by their \u escapes.
func appendEscaped(dst, p []byte) []byte {
	i := firstUnsafe(p)
	if i < 0 {
		return append(dst, p...)
	}
	b := append(dst, p[:i]...)
	for i < len(p) {
		c := p[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				b = appendU(b, rune(c))
			} else {
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if mustEscape(r) {
			b = appendU(b, r)
		} else {
			b = append(b, p[i:i+size]...)
		}
		i += size
	}
	return b
}

// firstUnsafe returns the index of the first byte that may start a character
// to escape, or -1.
func firstUnsafe(p []byte) int {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x7f {
			continue
		}
		if c == 0x7f {
			return i
		}
		r, _ := utf8.DecodeRune(p[i:])
		if mustEscape(r) {
			return i
		}
	}
	return -1
}

// mustEscape reports whether the log escapes the non-ASCII rune r.
func mustEscape(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f,
		r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x2028 && r <= 0x202e,
		r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// appendU appends the \u escape of r, which must be below U+10000.
func appendU(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
