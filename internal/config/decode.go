package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds how many YAML nodes one document may expand to, so that
// alias chains ("billion laughs") cannot exhaust memory or time.
const maxNodes = 100_000

var durationType = reflect.TypeFor[time.Duration]()

// decoder decodes a yaml.Node tree into a Config by reflection over yaml
// tags. Unlike yaml.v3's own decoding it reports every problem with the
// field path as well as the line, never echoes a rejected value, and
// replaces (rather than merges into) maps.
type decoder struct {
	file   string
	lines  map[string]int // setting path → line where the file sets it
	errs   Errors
	budget int
	data   []byte
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, lines: map[string]int{}, budget: maxNodes}
}

// maxDecodeErrors bounds how many decoding problems are reported; past it
// decoding stops, so a pathological file cannot produce a huge report.
const maxDecodeErrors = 50

func (d *decoder) fail(line int, p path, format string, args ...any) {
	if len(d.errs) >= maxDecodeErrors {
		return
	}
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Field: p.String(), Msg: fmt.Sprintf(format, args...)})
	if len(d.errs) == maxDecodeErrors {
		d.errs = append(d.errs, &FieldError{File: d.file, Msg: "too many errors; stopped decoding"})
		d.budget = 0
	}
}

// yamlLine extracts the line from yaml.v3 syntax errors ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of yaml.v3's parser errors, whose line
// numbers it reports 0-based.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxError records a YAML syntax error, located when yaml.v3 says where.
func (d *decoder) syntaxError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if parserProblems[msg] {
		// yaml.v3 reports parser (not scanner) errors with a 0-based
		// line, and leaves out line 0 altogether.
		line++
	}
	if d.hasTab(line) {
		msg += " (tabs are not allowed in YAML indentation; use spaces)"
	}
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Msg: "invalid YAML: " + msg})
}

// hasTab reports whether line (1-based) of the document, or the line before
// it, is indented with a tab.
func (d *decoder) hasTab(line int) bool {
	if line <= 0 {
		return false
	}
	lines := bytes.Split(d.data, []byte("\n"))
	for _, n := range []int{line, line - 1} {
		if n >= 1 && n <= len(lines) {
			indent := lines[n-1][:len(lines[n-1])-len(bytes.TrimLeft(lines[n-1], " \t"))]
			if bytes.IndexByte(indent, '\t') >= 0 {
				return true
			}
		}
	}
	return false
}

// decodeDocument decodes data (a single YAML document, possibly empty) into
// cfg, which already holds the defaults.
func (d *decoder) decodeDocument(data []byte, cfg *Config) {
	d.data = data
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxError(err)
		}
		return
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.fail(extra.Line, nil, "only one YAML document is allowed")
	case !errors.Is(err, io.EOF):
		d.syntaxError(err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return
		}
		doc = doc.Content[0]
	}
	if isNull(doc) {
		return
	}
	if doc.Kind != yaml.MappingNode {
		d.fail(doc.Line, nil, "the top level must be a mapping of settings")
		return
	}
	d.decode(doc, reflect.ValueOf(cfg).Elem(), nil, doc.Line)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decode decodes n into v. p is v's path and line the line that names it
// (the key's line for a mapping value, the item's line for a list item).
// A null leaves v unchanged, so it keeps its default.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, p path, line int) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.budget--; d.budget == 0 {
		d.fail(line, p, "document too large or too deeply aliased (more than %d nodes)", maxNodes)
	}
	if d.budget <= 0 {
		return
	}
	if len(p) > 0 {
		d.lines[p.String()] = line
	}
	if isNull(n) {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(line, p, "must be a duration such as 30s or 5m")
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.fail(line, p, "must be a duration such as 30s or 5m")
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, v, p, line)
	case t.Kind() == reflect.Map:
		d.decodeMap(n, v, p, line)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(line, p, "must be a list")
			return
		}
		s := reflect.MakeSlice(t, 0, len(n.Content))
		for i, item := range n.Content {
			e := reflect.New(t.Elem()).Elem()
			d.decode(item, e, p.index(i), item.Line)
			s = reflect.Append(s, e)
		}
		v.Set(s)
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(line, p, "must be a string")
			return
		}
		v.SetString(n.Value)
	case t.Kind() == reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(line, p, "must be a boolean (true or false)")
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(line, p, "must be an integer")
			return
		}
		if v.OverflowInt(i) {
			d.fail(line, p, "integer out of range")
			return
		}
		v.SetInt(i)
	default:
		// Unreachable for the types in this package.
		d.fail(line, p, "unsupported setting type %s", t)
	}
}

// structFields maps the yaml names of t's fields to field indexes, in
// declaration order.
func structFields(t reflect.Type) (names []string, index map[string]int) {
	index = map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}

// mappingKeys checks a mapping's keys (scalars, no merge keys, no
// duplicates) and calls fn for each valid key/value pair.
func (d *decoder) mappingKeys(n *yaml.Node, p path, fn func(key string, keyLine int, value *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		for k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k.Line, p, "keys must be plain strings")
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.fail(k.Line, p, "merge keys (<<) are not supported")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k.Line, p.key(k.Value), "duplicate key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, k.Line, val)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, p path, line int) {
	if n.Kind != yaml.MappingNode {
		d.fail(line, p, "must be a mapping")
		return
	}
	names, index := structFields(v.Type())
	d.mappingKeys(n, p, func(key string, keyLine int, value *yaml.Node) {
		i, ok := index[key]
		if !ok {
			d.fail(keyLine, p.key(key), "unknown field (valid fields here: %s)", strings.Join(names, ", "))
			return
		}
		d.decode(value, v.Field(i), p.field(key), keyLine)
	})
}

// decodeMap replaces v with the map n describes: a map given in the file
// replaces the default entirely.
func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, p path, line int) {
	if n.Kind != yaml.MappingNode {
		d.fail(line, p, "must be a mapping")
		return
	}
	t := v.Type()
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	d.mappingKeys(n, p, func(key string, keyLine int, value *yaml.Node) {
		e := reflect.New(t.Elem()).Elem()
		d.decode(value, e, p.key(key), keyLine)
		m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
	})
	v.Set(m)
}

// locate turns a validation problem into a FieldError that points at the
// environment variable or file line that set the value, or failing that at
// the nearest enclosing setting the file sets.
func (d *decoder) locate(pr problem, env map[string]string) *FieldError {
	fe := &FieldError{File: d.file, Field: pr.path.String(), Msg: pr.msg}
	for i := len(pr.path); i > 0; i-- {
		s := pr.path[:i].String()
		if name, ok := env[s]; ok {
			fe.File, fe.Env = "", name
			return fe
		}
		if line, ok := d.lines[s]; ok {
			fe.Line = line
			return fe
		}
	}
	if len(pr.path) > 0 && pr.path[0] == ".tool_permissions" {
		fe.Msg += "; tool_permissions is not in the file, so the built-in default applies: define tool_permissions for your roles"
	}
	return fe
}
