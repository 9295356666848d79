package policy

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xeval "github.com/cedar-policy/cedar-go/x/exp/eval"
	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
)

// never is the age, in seconds, of an event that never happened: older
// than any limit a policy sets.
const never = types.Long(1 << 40)

// maxDepth bounds the nesting of arguments converted to Cedar values;
// deeper values are left out (a policy reading them fails, which denies).
const maxDepth = 16

// request is one authorization request and the entities it refers to. It
// is the cedar.EntityGetter of its own evaluation, and builds the
// principal and resource entities only when a policy asks for them.
type request struct {
	e          *Engine
	principal  *guard.Principal
	held       []string
	permission string
	target     string
	req        cedar.Request
	cands      *candidates
	uses       ctxFields
	now        time.Time

	pEnt, rEnt     types.Entity
	pBuilt, rBuilt bool
}

// Get implements types.EntityGetter.
func (r *request) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid {
	case r.req.Principal:
		if !r.pBuilt {
			r.pEnt, r.pBuilt = r.e.principalEntity(uid, r.principal, r.held, r.now, r.uses&usePrincipalAttrs != 0), true
		}
		return r.pEnt, true
	case r.req.Resource:
		if !r.rBuilt {
			r.rEnt, r.rBuilt = r.e.resources.entity(r.e, uid), true
		}
		return r.rEnt, true
	}
	if uid.Type == typeRole {
		ent, ok := r.e.roles[uid]
		return ent, ok
	}
	return types.Entity{}, false
}

// request builds the Cedar request for a; ok is false for a method no
// policy can grant.
func (e *Engine) request(p *guard.Principal, a guard.Action) (*request, bool) {
	var typ types.EntityType
	switch a.Method {
	case "tools/call":
		typ = typeTool
	case "resources/read":
		typ = typeResource
	case "prompts/get":
		typ = typePrompt
	default:
		return nil, false
	}
	r := &request{e: e, principal: p, held: e.rbac.Roles(p), permission: a.Permission(), target: a.Target, now: time.Now()}
	if a.Request != nil && !a.Request.Time.IsZero() {
		r.now = a.Request.Time
	}
	r.req.Principal = types.NewEntityUID(typeUser, types.String(p.ID()))
	r.req.Action = types.NewEntityUID(typeAction, types.String(a.Method))
	r.req.Resource = types.NewEntityUID(typ, types.String(a.Target))
	r.cands = e.idx.candidates(r.req.Action, r.req.Resource)
	var argKeys []string
	r.uses, argKeys = r.cands.uses()
	r.req.Context = e.context(p, a, r.permission, r.now, r.uses, argKeys)
	return r, true
}

// withExtraRole is r for a principal that also holds role.
func (r *request) withExtraRole(role string) *request {
	r2 := *r
	r2.held = append(slices.Clone(r.held), role)
	r2.pBuilt = false
	return &r2
}

func stringSet(list []string) types.Set {
	vals := make([]types.Value, len(list))
	for i, s := range list {
		vals[i] = types.String(s)
	}
	return types.NewSet(vals...)
}

func age(now, t time.Time) types.Long {
	if t.IsZero() {
		return never
	}
	if d := now.Sub(t); d > 0 {
		return types.Long(d / time.Second)
	}
	return 0
}

// principalEntity builds the principal; its attributes only when withAttrs.
func (e *Engine) principalEntity(uid types.EntityUID, p *guard.Principal, held []string, now time.Time, withAttrs bool) types.Entity {
	parents := make([]types.EntityUID, 0, len(held)+len(p.Groups))
	for _, role := range held {
		parents = append(parents, types.NewEntityUID(typeRole, types.String(role)))
	}
	for _, g := range p.Groups {
		parents = append(parents, types.NewEntityUID(typeGroup, types.String(g)))
	}
	ent := types.Entity{UID: uid, Parents: types.NewEntityUIDSet(parents...)}
	if !withAttrs {
		return ent
	}
	ent.Attributes = types.NewRecord(types.RecordMap{
		"subject":   types.String(p.Subject),
		"issuer":    types.String(p.Issuer),
		"method":    types.String(p.Method),
		"client_id": types.String(p.ClientID),
		"roles":     stringSet(held),
		"groups":    stringSet(p.Groups),
		"scopes":    stringSet(p.Scopes),
		"mfa":       types.Boolean(!p.MFATime.IsZero()),
		"mfa_age":   age(now, p.MFATime),
		"auth_age":  age(now, p.AuthTime),
	})
	return ent
}

// resourceCache remembers resource entities, which depend only on the
// resource's name and the Engine: a bounded number of them, since names
// come from callers.
type resourceCache struct {
	m sync.Map // types.EntityUID -> types.Entity
	n atomic.Int64
}

// maxCachedResources bounds a resourceCache.
const maxCachedResources = 4096

func (c *resourceCache) entity(e *Engine, uid types.EntityUID) types.Entity {
	if v, ok := c.m.Load(uid); ok {
		return v.(types.Entity)
	}
	ent := e.resourceEntity(uid)
	if c.n.Add(1) <= maxCachedResources {
		c.m.Store(uid, ent)
	}
	return ent
}

func (e *Engine) resourceEntity(uid types.EntityUID) types.Entity {
	name := string(uid.ID)
	var tags []string
	for _, t := range e.tags {
		if authz.Match(t.pattern, name) {
			tags = appendNew(tags, t.tags...)
		}
	}
	upstream := ""
	if e.upstream != nil {
		upstream = e.upstream(name)
	}
	requirement := ""
	if uid.Type == typeTool {
		requirement, _, _ = e.rbac.Requirement(name)
	}
	ent := types.Entity{
		UID: uid,
		Attributes: types.NewRecord(types.RecordMap{
			"name":        types.String(name),
			"upstream":    types.String(upstream),
			"tags":        stringSet(tags),
			"requirement": types.String(requirement),
		}),
	}
	if upstream != "" {
		ent.Parents = types.NewEntityUIDSet(types.NewEntityUID(typeUpstream, types.String(upstream)))
	}
	return ent
}

// ctxFields is a set of context attributes.
type ctxFields uint16

// The context attributes, in the order of contextNames.
const (
	useArguments ctxFields = 1 << iota
	useSizes
	useNow
	useTime
	useIP
	useTransport
	useProtocolVersion
	usePermission
	useCredentialGrants
	// usePrincipalAttrs is not a context attribute: the policy reads an
	// attribute of the principal (not only its roles and groups).
	usePrincipalAttrs
	// useAllArguments: the policy reads context.arguments or
	// context.sizes as a whole, not only named arguments.
	useAllArguments
)

// argRef finds the arguments a policy's canonical text reads by name.
var argRef = regexp.MustCompile(`context\.(?:arguments|sizes)(?:\.([A-Za-z_][A-Za-z0-9_]*)| has ([A-Za-z_][A-Za-z0-9_]*)| has "((?:[^"\\]|\\.)*)"|\["((?:[^"\\]|\\.)*)"\])`)

var contextNames = []string{"arguments", "sizes", "now", "time", "ip", "transport", "protocol_version", "permission", "credential_grants"}

// contextFieldsOf returns the context attributes p may read: those its
// canonical text names (context.x, context has x, context["x"]), or all of
// them when it uses the context record as a whole. A superset costs only
// time; a missing attribute would deny, never allow.
func contextFieldsOf(p *cedar.Policy) (ctxFields, []string) {
	text := string(p.MarshalCedar())
	rest := strings.ReplaceAll(text, "context.", "")
	rest = strings.ReplaceAll(rest, "context has ", "")
	rest = strings.ReplaceAll(rest, "context[", "")
	if strings.Contains(rest, "context") {
		return ^ctxFields(0), nil
	}
	var u ctxFields
	if strings.Contains(text, "principal.") || strings.Contains(text, "principal has") || strings.Contains(text, "principal[") {
		u |= usePrincipalAttrs
	}
	for i, name := range contextNames {
		if strings.Contains(text, "context."+name) || strings.Contains(text, "context has "+name) || strings.Contains(text, `context["`+name+`"]`) {
			u |= 1 << i
		}
	}
	if u&(useArguments|useSizes) == 0 {
		return u, nil
	}
	var keys []string
	for _, m := range argRef.FindAllStringSubmatch(text, -1) {
		for _, k := range m[1:] {
			if k != "" {
				if uq, err := strconv.Unquote(`"` + k + `"`); err == nil {
					k = uq
				}
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	if strings.Contains(argRef.ReplaceAllString(text, ""), "context.arguments") || strings.Contains(argRef.ReplaceAllString(text, ""), "context.sizes") {
		u |= useAllArguments
	}
	return u, keys
}

// context builds the context attributes in uses.
func (e *Engine) context(p *guard.Principal, a guard.Action, perm string, now time.Time, uses ctxFields, argKeys []string) types.Record {
	m := make(types.RecordMap, 4)
	if uses&usePermission != 0 {
		m["permission"] = types.String(perm)
	}
	if uses&useCredentialGrants != 0 {
		m["credential_grants"] = types.Boolean(slices.ContainsFunc(p.Permissions, func(pat string) bool { return authz.Match(pat, perm) }))
	}
	if uses&useNow != 0 {
		m["now"] = types.NewDatetime(now)
	}
	if uses&useTime != 0 {
		local := now.In(e.loc)
		m["time"] = types.NewRecord(types.RecordMap{
			"hour":    types.Long(local.Hour()),
			"minute":  types.Long(local.Minute()),
			"weekday": types.Long(local.Weekday()),
			"date":    types.String(local.Format(time.DateOnly)),
		})
	}
	if info := a.Request; info != nil {
		if uses&useTransport != 0 {
			m["transport"] = types.String(info.Transport)
		}
		if uses&useProtocolVersion != 0 {
			m["protocol_version"] = types.String(info.ProtocolVersion)
		}
		if uses&useIP != 0 {
			if ip, err := types.ParseIPAddr(info.ClientIP); err == nil {
				m["ip"] = ip
			}
		}
	}
	switch {
	case uses&(useArguments|useSizes) == 0:
	case a.Listing:
		m["arguments"] = xeval.Variable("arguments")
		m["sizes"] = xeval.Variable("sizes")
	default:
		if uses&useAllArguments != 0 {
			argKeys = nil
		}
		m["arguments"], m["sizes"] = arguments(a.Arguments, argKeys)
	}
	return types.NewRecord(m)
}

// arguments converts a tools/call's JSON arguments to a Cedar record, and
// the sizes of its top-level values. With keys, only those arguments are
// converted (the ones the policies read); nil keys means all.
func arguments(raw json.RawMessage, keys []string) (args, sizes types.Record) {
	var obj map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &obj) != nil {
		return types.NewRecord(nil), types.NewRecord(nil)
	}
	n := len(obj)
	if keys != nil {
		n = len(keys)
	}
	am, sm := make(types.RecordMap, n), make(types.RecordMap, n)
	for k, v := range obj {
		if keys != nil && !slices.Contains(keys, k) {
			continue
		}
		var x any
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		if d.Decode(&x) != nil {
			continue
		}
		if cv, ok := toCedar(x, 0); ok {
			am[types.String(k)] = cv
		}
		switch t := x.(type) {
		case []any:
			sm[types.String(k)] = types.Long(len(t))
		case map[string]any:
			sm[types.String(k)] = types.Long(len(t))
		case string:
			sm[types.String(k)] = types.Long(len(t))
		}
	}
	return types.NewRecord(am), types.NewRecord(sm)
}

// toCedar converts a decoded JSON value; ok is false for null and for
// values nested deeper than maxDepth.
func toCedar(x any, depth int) (types.Value, bool) {
	if depth > maxDepth {
		return nil, false
	}
	switch t := x.(type) {
	case string:
		return types.String(t), true
	case bool:
		return types.Boolean(t), true
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return types.Long(i), true
		}
		if f, err := t.Float64(); err == nil && !math.IsInf(f, 0) {
			if d, err := types.NewDecimalFromFloat(f); err == nil {
				return d, true
			}
		}
		return types.String(t), true
	case []any:
		vals := make([]types.Value, 0, len(t))
		for _, v := range t {
			if cv, ok := toCedar(v, depth+1); ok {
				vals = append(vals, cv)
			}
		}
		return types.NewSet(vals...), true
	case map[string]any:
		m := make(types.RecordMap, len(t))
		for k, v := range t {
			if cv, ok := toCedar(v, depth+1); ok {
				m[types.String(k)] = cv
			}
		}
		return types.NewRecord(m), true
	}
	return nil, false
}

// list decides whether an item belongs in a list result: whether some
// call could be permitted, with the arguments unknown (see the package
// doc). The determining policies are those a call would meet whatever
// its arguments.
func (e *Engine) list(r *request) guard.Decision {
	env := xeval.Env{Entities: r, Principal: r.req.Principal, Action: r.req.Action, Resource: r.req.Resource, Context: r.req.Context}
	var out outcome
	var permits []*compiled
	for _, cands := range r.cands {
		for _, c := range cands {
			residual, keep := xeval.PartialPolicy(env, c.ast)
			if !keep {
				continue
			}
			failed, open := false, false
			for _, cond := range residual.Conditions {
				if _, isErr := xeval.ToPartialError(cond.Body); isErr {
					failed = true
				} else {
					open = true
				}
			}
			switch {
			case c.forbid && (failed || !open):
				out.determining = append(out.determining, c)
				out.failed = out.failed || failed
			case !c.forbid && !failed:
				permits = append(permits, c)
			}
		}
	}
	if len(out.determining) > 0 {
		return e.explain(r, out)
	}
	if len(permits) == 0 {
		return guard.Decision{Reason: "no policy permits " + r.permission, Policies: []string{"default-deny"}}
	}
	out.allowed, out.determining = true, permits
	return e.explain(r, out)
}
