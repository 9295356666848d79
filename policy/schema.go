package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Tool is what the schema needs to know of a tool: its name and the JSON
// Schema of its arguments.
type Tool struct {
	Name        string
	InputSchema json.RawMessage
}

// ident matches the attribute names Cedar's schema syntax accepts bare.
var ident = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Schema returns the Cedar schema of mcpguard's request model (see the
// package doc) for the given tools: context.arguments is a record of every
// argument any tool declares, each optional (so a policy must test
// `context.arguments has x` before reading x, as it must at run time),
// typed from the tools' JSON Schemas. An argument whose type cannot be
// expressed in Cedar, or that two tools declare with different types, is
// left out, and skipped lists why.
func Schema(tools []Tool) (text string, skipped []string) {
	text, skipped, _ = buildSchema(tools)
	return text, skipped
}

// buildSchema is Schema, plus the names of the arguments it declares.
func buildSchema(tools []Tool) (text string, skipped []string, declared map[string]bool) {
	args := map[string]string{}
	conflict := map[string]bool{}
	for _, t := range tools {
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if len(t.InputSchema) == 0 || json.Unmarshal(t.InputSchema, &s) != nil {
			continue
		}
		for name, prop := range s.Properties {
			typ, ok := cedarType(prop, 0)
			if !ok {
				skipped = append(skipped, fmt.Sprintf("argument %q of tool %s: no Cedar type for its JSON Schema", name, t.Name))
				conflict[name] = true
				continue
			}
			if prev, seen := args[name]; seen && prev != typ {
				skipped = append(skipped, fmt.Sprintf("argument %q: tools declare it with different types (%s, %s)", name, prev, typ))
				conflict[name] = true
			}
			args[name] = typ
		}
	}
	names := make([]string, 0, len(args))
	for name := range args {
		if !conflict[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	sort.Strings(skipped)
	var argFields, sizeFields []string
	for _, name := range names {
		key := attrName(name)
		argFields = append(argFields, fmt.Sprintf("%s?: %s", key, args[name]))
		sizeFields = append(sizeFields, fmt.Sprintf("%s?: Long", key))
	}
	var b strings.Builder
	b.WriteString(`entity Role in [Role];
entity Group;
entity Upstream;
entity User in [Role, Group] {
  subject: String, issuer: String, method: String, client_id: String,
  roles: Set<String>, groups: Set<String>, scopes: Set<String>,
  mfa: Bool, mfa_age: Long, auth_age: Long
};
entity Tool, Resource, Prompt in [Upstream] {
  name: String, upstream: String, tags: Set<String>, requirement: String
};
`)
	fmt.Fprintf(&b, "type Arguments = {%s};\n", strings.Join(argFields, ", "))
	fmt.Fprintf(&b, "type Sizes = {%s};\n", strings.Join(sizeFields, ", "))
	const common = `now: datetime, time: {hour: Long, minute: Long, weekday: Long, date: String}, ip?: ipaddr, transport: String, protocol_version: String, permission: String, credential_grants: Bool`
	fmt.Fprintf(&b, "action \"tools/call\" appliesTo { principal: User, resource: Tool, context: {arguments: Arguments, sizes: Sizes, %s} };\n", common)
	fmt.Fprintf(&b, "action \"resources/read\" appliesTo { principal: User, resource: Resource, context: {arguments: {}, sizes: {}, %s} };\n", common)
	fmt.Fprintf(&b, "action \"prompts/get\" appliesTo { principal: User, resource: Prompt, context: {arguments: {}, sizes: {}, %s} };\n", common)
	declared = map[string]bool{}
	for name := range args {
		declared[name] = true
	}
	return b.String(), skipped, declared
}

func attrName(name string) string {
	if ident.MatchString(name) {
		return name
	}
	return strconv.Quote(name)
}

// cedarType maps a JSON Schema to a Cedar schema type, as arguments are
// converted: integers and numbers to Long, arrays to sets, objects with
// properties to records.
func cedarType(raw json.RawMessage, depth int) (string, bool) {
	if depth > maxDepth {
		return "", false
	}
	var s struct {
		Type       any                        `json:"type"`
		Items      json.RawMessage            `json:"items"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	typ, _ := s.Type.(string)
	if list, ok := s.Type.([]any); ok {
		// ["array", "null"]: null arguments are left out, so the other
		// type is the one a policy sees.
		for _, t := range list {
			if t, ok := t.(string); ok && t != "null" {
				if typ != "" {
					return "", false
				}
				typ = t
			}
		}
	}
	switch typ {
	case "string":
		return "String", true
	case "integer", "number":
		return "Long", true
	case "boolean":
		return "Bool", true
	case "array":
		elem, ok := cedarType(s.Items, depth+1)
		if !ok {
			return "", false
		}
		return "Set<" + elem + ">", true
	case "object":
		names := make([]string, 0, len(s.Properties))
		for name := range s.Properties {
			names = append(names, name)
		}
		sort.Strings(names)
		var fields []string
		for _, name := range names {
			ft, ok := cedarType(s.Properties[name], depth+1)
			if !ok {
				return "", false
			}
			fields = append(fields, fmt.Sprintf("%s?: %s", attrName(name), ft))
		}
		return "{" + strings.Join(fields, ", ") + "}", true
	}
	return "", false
}

// Check validates every policy of e against the schema of the tools
// (see [Schema]): an attribute that does not exist, a type error, an
// entity type or action the model lacks, an argument no tool declares are
// errors naming the policy and its position, instead of policies that
// silently never apply. skipped are the arguments the schema could not
// type.
func (e *Engine) Check(tools []Tool) (problems []error, skipped []string, err error) {
	text, skipped, declared := buildSchema(tools)
	var s schema.Schema
	if err := s.UnmarshalCedar([]byte(text)); err != nil {
		return nil, nil, fmt.Errorf("schema: %w", err)
	}
	res, err := s.Resolve()
	if err != nil {
		return nil, nil, fmt.Errorf("schema: %w", err)
	}
	v := validate.New(res)
	for _, c := range e.policies {
		if err := v.Policy(c.id, c.ast); err != nil {
			problems = append(problems, fmt.Errorf("%s: policy %s: %w", position(c), c.id, err))
		}
		// Cedar types `context.arguments has x` as false for an x the
		// record lacks, which is no error to it: a typo would silently
		// disable the condition.
		for _, k := range c.argKeys {
			if !declared[k] {
				problems = append(problems, fmt.Errorf("%s: policy %s: reads argument %q, which no tool declares", position(c), c.id, k))
			}
		}
	}
	return problems, skipped, nil
}

// Position returns where the policy with the given id is defined:
// "file:line", or "configuration (roles and tools)" for one compiled from
// the YAML roles; "" when there is none.
func (e *Engine) Position(id string) string {
	if c, ok := e.byID[id]; ok {
		return position(c)
	}
	return ""
}
