package policy

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
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
// is the cedar.EntityGetter of its own evaluation.
type request struct {
	e          *Engine
	principal  *guard.Principal
	held       []string
	permission string
	req        cedar.Request
	pEnt, rEnt types.Entity
	now        time.Time
}

// Get implements types.EntityGetter.
func (r *request) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid {
	case r.req.Principal:
		return r.pEnt, true
	case r.req.Resource:
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
func (e *Engine) request(p *guard.Principal, a guard.Action, held []string) (*request, bool) {
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
	if held == nil {
		held = e.rbac.Roles(p)
	}
	r := &request{e: e, principal: p, held: held, permission: a.Permission(), now: time.Now()}
	if a.Request != nil && !a.Request.Time.IsZero() {
		r.now = a.Request.Time
	}
	r.req.Principal = types.NewEntityUID(typeUser, types.String(p.ID()))
	r.req.Action = types.NewEntityUID(typeAction, types.String(a.Method))
	r.req.Resource = types.NewEntityUID(typ, types.String(a.Target))
	r.pEnt = e.principalEntity(r.req.Principal, p, held, r.now)
	r.rEnt = e.resourceEntity(r.req.Resource, a.Target)
	r.req.Context = e.context(p, a, r.permission, r.now)
	return r, true
}

// withExtraRole is r for a principal that also holds role.
func (r *request) withExtraRole(role string) *request {
	r2 := *r
	r2.held = append(slices.Clone(r.held), role)
	r2.pEnt = r.e.principalEntity(r.req.Principal, r.principal, r2.held, r.now)
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

func (e *Engine) principalEntity(uid types.EntityUID, p *guard.Principal, held []string, now time.Time) types.Entity {
	parents := make([]types.EntityUID, 0, len(held)+len(p.Groups))
	for _, role := range held {
		parents = append(parents, types.NewEntityUID(typeRole, types.String(role)))
	}
	for _, g := range p.Groups {
		parents = append(parents, types.NewEntityUID(typeGroup, types.String(g)))
	}
	return types.Entity{
		UID:     uid,
		Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{
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
		}),
	}
}

func (e *Engine) resourceEntity(uid types.EntityUID, name string) types.Entity {
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

func (e *Engine) context(p *guard.Principal, a guard.Action, perm string, now time.Time) types.Record {
	local := now.In(e.loc)
	m := types.RecordMap{
		"permission":        types.String(perm),
		"credential_grants": types.Boolean(slices.ContainsFunc(p.Permissions, func(pat string) bool { return authz.Match(pat, perm) })),
		"now":               types.NewDatetime(now),
		"time": types.NewRecord(types.RecordMap{
			"hour":    types.Long(local.Hour()),
			"minute":  types.Long(local.Minute()),
			"weekday": types.Long(local.Weekday()),
			"date":    types.String(local.Format(time.DateOnly)),
		}),
	}
	if info := a.Request; info != nil {
		m["transport"] = types.String(info.Transport)
		m["protocol_version"] = types.String(info.ProtocolVersion)
		if ip, err := types.ParseIPAddr(info.ClientIP); err == nil {
			m["ip"] = ip
		}
	}
	if a.Listing {
		m["arguments"] = xeval.Variable("arguments")
		m["sizes"] = xeval.Variable("sizes")
	} else {
		m["arguments"], m["sizes"] = arguments(a.Arguments)
	}
	return types.NewRecord(m)
}

// arguments converts a tools/call's JSON arguments to a Cedar record, and
// the sizes of its top-level values.
func arguments(raw json.RawMessage) (args, sizes types.Record) {
	var obj map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &obj) != nil {
		return types.NewRecord(nil), types.NewRecord(nil)
	}
	am, sm := types.RecordMap{}, types.RecordMap{}
	for k, v := range obj {
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
	for _, cands := range e.idx.candidates(r.req.Action, r.req.Resource) {
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
