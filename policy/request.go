package policy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	xeval "github.com/cedar-policy/cedar-go/x/exp/eval"
	"github.com/go-json-experiment/json/jsontext"
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
	e         *Engine
	principal *guard.Principal
	held      []string
	action    guard.Action
	target    string
	req       cedar.Request
	cands     *candidates
	uses      ctxFields
	now       time.Time

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
	r := &request{e: e, principal: p, held: e.rbac.Roles(p), action: a, target: a.Target, now: time.Now()}
	if a.Request != nil && !a.Request.Time.IsZero() {
		r.now = a.Request.Time
	}
	r.req.Principal = types.NewEntityUID(typeUser, types.String(p.ID()))
	r.req.Action = types.NewEntityUID(typeAction, types.String(a.Method))
	r.req.Resource = types.NewEntityUID(typ, types.String(a.Target))
	r.cands = e.idx.candidates(r.req.Action, r.req.Resource)
	var argKeys []string
	r.uses, argKeys = r.cands.uses()
	r.req.Context = e.context(p, a, r.now, r.uses, argKeys)
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
// resource's name, the Engine and the item's upstream: a bounded number of
// them, since names come from callers. The upstream is asked again on
// every lookup (an upstream may start serving a name after it was first
// seen), and an entity cached for another upstream is rebuilt.
type resourceCache struct {
	m sync.Map // types.EntityUID -> types.Entity
	n atomic.Int64
}

// maxCachedResources bounds a resourceCache.
const maxCachedResources = 4096

func (c *resourceCache) entity(e *Engine, uid types.EntityUID) types.Entity {
	upstream := e.upstreamOf(uid)
	if v, ok := c.m.Load(uid); ok {
		if ent := v.(types.Entity); cachedUpstream(ent) == upstream {
			return ent
		}
	}
	ent := e.resourceEntity(uid, upstream)
	if _, ok := c.m.Load(uid); ok || c.n.Add(1) <= maxCachedResources {
		c.m.Store(uid, ent)
	}
	return ent
}

func cachedUpstream(ent types.Entity) string {
	v, _ := ent.Attributes.Get("upstream")
	s, _ := v.(types.String)
	return string(s)
}

// upstreamOf asks Options.Upstream who serves the resource.
func (e *Engine) upstreamOf(uid types.EntityUID) string {
	if e.upstream == nil {
		return ""
	}
	kind := "resource"
	switch uid.Type {
	case typeTool:
		kind = "tool"
	case typePrompt:
		kind = "prompt"
	}
	return e.upstream(kind, string(uid.ID))
}

func (e *Engine) resourceEntity(uid types.EntityUID, upstream string) types.Entity {
	name := string(uid.ID)
	var tags []string
	for _, t := range e.tags {
		if authz.Match(t.pattern, name) {
			tags = appendNew(tags, t.tags...)
		}
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

var contextNames = []string{"arguments", "sizes", "now", "time", "ip", "transport", "protocol_version", "permission", "credential_grants"}

// reads finds what a policy reads, by walking its parsed conditions: the
// context attributes it names, the arguments (and sizes) it names, and
// whether it may read an attribute of the principal. Whatever it cannot
// pin down counts as read in full (the whole context, every argument, the
// principal's attributes): a superset costs only time, while a missing
// attribute could disable a forbid guarded by `has`.
func reads(p *xast.Policy) (uses ctxFields, argKeys []string) {
	field := func(name types.String) ctxFields {
		for i, n := range contextNames {
			if types.String(n) == name {
				return 1 << i
			}
		}
		return 0
	}
	isVar := func(n xast.IsNode, name types.String) bool {
		v, ok := n.(xast.NodeTypeVariable)
		return ok && v.Name == name
	}
	// argRecord reports whether n is context.arguments or context.sizes.
	argRecord := func(n xast.IsNode) bool {
		a, ok := n.(xast.NodeTypeAccess)
		return ok && isVar(a.Arg, "context") && (a.Value == "arguments" || a.Value == "sizes")
	}
	// base follows attribute accesses down to what they start from.
	base := func(n xast.IsNode) xast.IsNode {
		for {
			a, ok := n.(xast.NodeTypeAccess)
			if !ok {
				return n
			}
			n = a.Arg
		}
	}
	var contextVars, contextReads, argRecords, argReads int
	attrOf := func(arg xast.IsNode, name types.String) {
		switch {
		case isVar(arg, "context"):
			contextReads++
			uses |= field(name)
		case argRecord(arg):
			argReads++
			if !slices.Contains(argKeys, string(name)) {
				argKeys = append(argKeys, string(name))
			}
		}
		if b := base(arg); !isVar(b, "context") && !isVar(b, "resource") {
			uses |= usePrincipalAttrs // the principal, or something that may be it
		}
	}
	for _, cond := range p.Conditions {
		xast.Inspect(xast.NewNode(cond.Body), func(n xast.IsNode) bool {
			switch n := n.(type) {
			case xast.NodeTypeVariable:
				if n.Name == "context" {
					contextVars++
				}
			case xast.NodeTypeAccess:
				if argRecord(n) {
					argRecords++
				}
				attrOf(n.Arg, n.Value)
			case xast.NodeTypeHas:
				attrOf(n.Arg, n.Value)
			case xast.NodeTypeGetTag:
				attrOf(n.Left, "")
			case xast.NodeTypeHasTag:
				attrOf(n.Left, "")
			}
			return true
		})
	}
	if contextVars > contextReads {
		return ^ctxFields(0), nil // the context record used as a whole
	}
	if argRecords > argReads {
		uses |= useAllArguments // context.arguments used as a whole
	}
	if uses&(useArguments|useSizes) != 0 {
		uses |= useArguments | useSizes
	}
	return uses, argKeys
}

// context builds the context attributes in uses.
func (e *Engine) context(p *guard.Principal, a guard.Action, now time.Time, uses ctxFields, argKeys []string) types.Record {
	m := make(types.RecordMap, 4)
	if uses&(usePermission|useCredentialGrants) != 0 {
		perm := a.Permission()
		if uses&usePermission != 0 {
			m["permission"] = types.String(perm)
		}
		if uses&useCredentialGrants != 0 {
			m["credential_grants"] = types.Boolean(len(p.Permissions) > 0 && slices.ContainsFunc(p.Permissions, func(pat string) bool { return authz.Match(pat, perm) }))
		}
	}
	if uses&useNow != 0 {
		m["now"] = types.NewDatetime(now)
	}
	if uses&useTime != 0 {
		m["time"] = e.clock.record(now, e.loc)
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
		if args, sizes, ok := arguments(a.Arguments, argKeys); ok {
			m["arguments"], m["sizes"] = args, sizes
		}
	}
	return types.NewRecord(m)
}

// arguments converts a tools/call's JSON arguments to a Cedar record, and
// the sizes of its top-level values. With keys, only those arguments are
// converted (the ones the policies read); nil keys means all. ok is false
// for arguments that are not one JSON object, or that repeat a name at
// any depth (which reader would see which value?): the context then has
// no arguments at all, so that every policy reading them fails, closed.
func arguments(raw json.RawMessage, keys []string) (args, sizes types.Record, ok bool) {
	if len(raw) == 0 {
		return types.NewRecord(nil), types.NewRecord(nil), true
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return types.Record{}, types.Record{}, false
	}
	am, sm := types.RecordMap{}, types.RecordMap{}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return types.Record{}, types.Record{}, false
		}
		k := tok.String()
		if keys != nil && !slices.Contains(keys, k) {
			if dec.SkipValue() != nil {
				return types.Record{}, types.Record{}, false
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return types.Record{}, types.Record{}, false
		}
		var x any
		jd := json.NewDecoder(bytes.NewReader(v))
		jd.UseNumber()
		if jd.Decode(&x) != nil {
			return types.Record{}, types.Record{}, false
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
	if _, err := dec.ReadToken(); err != nil {
		return types.Record{}, types.Record{}, false
	}
	return types.NewRecord(am), types.NewRecord(sm), true
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
		// Only a number written exactly as a Cedar decimal (at most four
		// fractional digits, no exponent) becomes one: rounding 100.00001
		// down to 100.0 would let it pass a limit of 100. Anything else
		// is a String, which fails closed in a numeric comparison.
		if d, err := types.ParseDecimal(string(t)); err == nil {
			return d, true
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
			// failed: a condition fails whatever the arguments (for a
			// forbid, the error itself is what applies it; for a permit,
			// one that can never hold). open: a condition depends on them.
			failed, open := false, false
			for _, cond := range residual.Conditions {
				_, isErr := xeval.ToPartialError(cond.Body)
				switch {
				case isErr, !c.forbid && !mayHold(cond.Body, bool(cond.Condition)):
					failed = true
				default:
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
		return guard.Decision{Reason: "no policy permits " + r.action.Permission(), Policies: []string{"default-deny"}}
	}
	out.allowed, out.determining = true, permits
	return e.explain(r, out)
}

// mayHold reports whether a residual condition left by partial evaluation
// can still come out as want (true for `when`, false for `unless`) for
// some arguments: errors the evaluation left under && and || (and in an
// if's test) make it fail instead, as Cedar's short-circuiting would. For
// any other expression it answers yes, which can only list an item that
// every call then refuses, never hide one that a call could use.
func mayHold(n xast.IsNode, want bool) bool {
	if _, isErr := xeval.ToPartialError(n); isErr {
		return false
	}
	isErr := func(n xast.IsNode) bool { _, e := xeval.ToPartialError(n); return e }
	switch n := n.(type) {
	case xast.NodeTypeAnd:
		if want {
			return mayHold(n.Left, true) && mayHold(n.Right, true)
		}
		return !isErr(n.Left) && (mayHold(n.Left, false) || mayHold(n.Right, false))
	case xast.NodeTypeOr:
		if want {
			return !isErr(n.Left) && (mayHold(n.Left, true) || mayHold(n.Right, true))
		}
		return mayHold(n.Left, false) && mayHold(n.Right, false)
	case xast.NodeTypeNot:
		return mayHold(n.Arg, !want)
	case xast.NodeTypeIfThenElse:
		return !isErr(n.If) && (mayHold(n.Then, want) || mayHold(n.Else, want))
	}
	return true
}

// clockCache keeps the context.time record of the current minute, which
// every request in that minute shares.
type clockCache struct {
	cur atomic.Pointer[clockEntry]
}

type clockEntry struct {
	minute int64 // unix minutes
	rec    types.Record
}

func (c *clockCache) record(now time.Time, loc *time.Location) types.Record {
	minute := now.Unix() / 60
	if e := c.cur.Load(); e != nil && e.minute == minute {
		return e.rec
	}
	local := now.In(loc)
	rec := types.NewRecord(types.RecordMap{
		"hour":    types.Long(local.Hour()),
		"minute":  types.Long(local.Minute()),
		"weekday": types.Long(local.Weekday()),
		"date":    types.String(local.Format(time.DateOnly)),
	})
	c.cur.Store(&clockEntry{minute: minute, rec: rec})
	return rec
}
