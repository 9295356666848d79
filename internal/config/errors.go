package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one problem with the configuration, located as precisely
// as possible. It never contains a secret value.
type FieldError struct {
	// File is the configuration file name as given to Load or Parse; empty
	// when there is no file.
	File string
	// Line is the 1-based line in File, or 0 when unknown or the value did
	// not come from the file.
	Line int
	// Env is the environment variable the value came from, if any.
	Env string
	// Field is the setting's path, such as "auth.jwt.keys[0].secret";
	// empty for problems with the document as a whole.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error formats e as "file:line: field: msg", or as
// "environment NAME: msg" for a value from the environment.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("environment ")
		b.WriteString(e.Env)
		b.WriteString(": ")
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File)
		b.WriteString(": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration. Parse and Load return
// it (as error) when the configuration is invalid.
type Errors []*FieldError

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, for errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sort orders problems with a line by line (file order), followed by those
// without, each group keeping discovery order.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *FieldError) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		default:
			return a.Line - b.Line
		}
	})
}

// path is a setting's location: rendered segments such as ".server",
// "[0]" or `["a.b"]`. Methods return new slices and never alias.
type path []string

// plainKey matches map keys that can be shown as .key in a path.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_@*-]+$`)

func (p path) field(name string) path {
	return append(slices.Clip(p), "."+name)
}

func (p path) key(k string) path {
	if plainKey.MatchString(k) {
		return p.field(k)
	}
	return append(slices.Clip(p), "["+strconv.Quote(k)+"]")
}

func (p path) index(i int) path {
	return append(slices.Clip(p), "["+strconv.Itoa(i)+"]")
}

func (p path) String() string {
	return strings.TrimPrefix(strings.Join(p, ""), ".")
}

// problem is a validation failure before it is located in file or
// environment.
type problem struct {
	path path
	msg  string
}
