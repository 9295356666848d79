package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/jsonx"
)

// encoder turns a guard.Record into the body of a line: the JSON object
// without its closing brace. Encoders are pooled, and so are their buffers.
//
// The bytes are those log/slog's JSON handler wrote for the record when it
// was given the record's fields as attributes (see the package
// documentation), followed by the escaping of [appendEscaped]; they are
// appended directly rather than through slog, which spent about half the
// CPU time of a durable append encoding the record. The test oracle in
// encode_oracle_test.go is the slog-based encoder, and the tests check
// that both produce the same bytes.
type encoder struct {
	buf  []byte // the body
	line []byte // scratch for the sealed line in stream mode

	keys []string     // scratch for sorting the keys of Args
	val  bytes.Buffer // scratch for an Args value encoded by encoding/json
	json *json.Encoder
}

// initialBuf is the initial capacity of an encoder's buffer: enough for a
// typical record, so that most records never grow it.
const initialBuf = 768

func newEncoder() *encoder {
	e := &encoder{buf: make([]byte, 0, initialBuf)}
	e.json = json.NewEncoder(&e.val)
	e.json.SetEscapeHTML(false)
	return e
}

// body returns the encoded object without its closing brace and newline.
func (e *encoder) body() []byte { return e.buf }

// encode encodes r into e.buf. A zero r.Time is replaced by now().
func (e *encoder) encode(r *guard.Record, now func() time.Time) error {
	if cap(e.buf) > maxKeptBuf {
		e.buf = make([]byte, 0, initialBuf)
	}
	ts := r.Time
	if ts.IsZero() {
		ts = now()
	}
	b := append(e.buf[:0], '{')
	if !ts.IsZero() { // slog omits a zero time
		b = append(b, `"ts":"`...)
		b = ts.UTC().AppendFormat(b, TimeLayout)
		b = append(b, '"')
	}
	b = appendStringField(b, "request_id", r.RequestID)
	b = appendStringField(b, "user", r.Subject)
	b = appendStringField(b, "issuer", r.Issuer)
	b = appendStringField(b, "auth_method", string(r.AuthMethod))
	b = appendStringField(b, "key_id", r.KeyID)
	if r.PreviousKey {
		b = appendKey(b, "key_previous_secret")
		b = append(b, "true"...)
	}
	b = appendStringsField(b, "roles", r.Roles)
	b = appendStringField(b, "client_addr", r.ClientAddr)
	b = appendStringField(b, "transport", r.Transport)
	b = appendStringField(b, "session_id", r.SessionID)
	b = appendStringField(b, "method", r.Method)
	b = appendStringField(b, "target", r.Target)
	b = appendKey(b, "decision")
	b = appendString(b, string(r.Decision), false)
	b = appendStringField(b, "reason", r.Reason)
	b = appendStringsField(b, "required_roles", r.RequiredRoles)
	b = appendStringsField(b, "policies", r.Policies)
	if r.Duration != 0 {
		b = appendKey(b, "duration_ns")
		b = strconv.AppendInt(b, int64(r.Duration), 10)
	}
	if r.ToolError {
		b = appendKey(b, "tool_error")
		b = append(b, "true"...)
	}
	b = appendStringField(b, "error", r.Error)
	b = appendStringField(b, "args_sha256", r.ArgsDigest)
	if len(r.Args) > 0 {
		var err error
		if b, err = e.appendArgs(appendKey(b, "args"), r.Args); err != nil {
			e.buf = b[:0]
			return fmt.Errorf("audit: encode args: %w", err)
		}
	}
	e.buf = b
	return nil
}

// appendKey appends the separator before a member (none before the first)
// and the member's key, which must need no escaping.
func appendKey(b []byte, key string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

// appendStringField appends a string member as slog does, unless v is empty.
func appendStringField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(appendKey(b, key), v, false)
}

// appendStringsField appends a string array member as encoding/json does,
// unless v is empty.
func appendStringsField(b []byte, key string, v []string) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(appendKey(b, key), '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s, true)
	}
	return append(b, ']')
}

// appendArgs appends args as encoding/json encodes a map[string]any with
// HTML escaping off (keys sorted bytewise), then escaped by [appendEscaped].
// Strings, finite float64s, booleans and nil, which is all that the guard
// package records, are encoded here; other values by encoding/json.
func (e *encoder) appendArgs(b []byte, args map[string]any) ([]byte, error) {
	keys := e.keys[:0]
	for k := range args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	defer func() {
		clear(keys)
		e.keys = keys[:0]
	}()
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k, true)
		b = append(b, ':')
		v := args[k]
		switch v := v.(type) {
		case nil:
			b = append(b, "null"...)
			continue
		case string:
			b = appendString(b, v, true)
			continue
		case bool:
			b = strconv.AppendBool(b, v)
			continue
		case float64:
			if !math.IsInf(v, 0) && !math.IsNaN(v) {
				b = jsonx.AppendFloat(b, v)
				continue
			}
		}
		e.val.Reset()
		if err := e.json.Encode(v); err != nil {
			return b, err
		}
		b = appendEscaped(b, bytes.TrimSuffix(e.val.Bytes(), []byte{'\n'}))
	}
	return append(b, '}'), nil
}

// plain[c] is true for the ASCII bytes that stand for themselves in a JSON
// string of the log: printable ASCII but '"', '\\' and DEL.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a quoted JSON string, escaped as encoding/json
// (jsonStyle true, with HTML escaping off) or log/slog's JSON handler
// (jsonStyle false) escapes it, and then as [appendEscaped] escapes JSON
// text. The two styles differ only for backspace and form feed, which
// encoding/json writes \b and \f and slog \u0008 and \u000c. Both write
// invalid UTF-8 as \ufffd and the other control characters as \n, \r, \t
// or \u00XX; the log also escapes DEL, C1 controls, U+2028, U+2029 and the
// bidirectional formatting characters (see [mustEscape]).
func appendString(b []byte, s string, jsonStyle bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = appendShortOrU(b, 'b', c, jsonStyle)
			case '\f':
				b = appendShortOrU(b, 'f', c, jsonStyle)
			default: // other controls and DEL
				b = appendU(b, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case mustEscape(r): // includes U+2028 and U+2029
			b = append(b, s[start:i]...)
			b = appendU(b, r)
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendShortOrU appends the short escape \short of c, or its \u escape.
func appendShortOrU(b []byte, short, c byte, useShort bool) []byte {
	if useShort {
		return append(b, '\\', short)
	}
	return appendU(b, rune(c))
}
