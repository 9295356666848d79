// Package jsonx holds JSON encoding pieces shared by mcpguard's hand-written
// encoders, which must match encoding/json byte for byte.
package jsonx

import (
	"math"
	"strconv"
)

// AppendFloat appends the finite f as encoding/json encodes a float64: like
// strconv.FormatFloat(f, 'f', -1, 64), but with an exponent ('e', with no
// leading zero in it) below 1e-6 and from 1e21 on.
func AppendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
