package policy

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
)

// File is one Cedar policy document.
type File struct {
	// Name is shown in errors and in the ids of policies without an @id
	// annotation ("<name>:<line>").
	Name string
	Data []byte
}

// Options are the input to [New].
type Options struct {
	// RBAC is the YAML role model, compiled into Cedar policies named
	// "role:<role>:<permission>", "tool:<pattern>" and "credential".
	RBAC authz.Policy
	// Files are the Cedar policies written by hand (policies/*.cedar).
	Files []File
	// Tags maps a tool, resource or prompt name, or a glob over names, to
	// the tags its resource entity carries. Every matching entry adds
	// its tags.
	Tags map[string][]string
	// Upstream returns the upstream server that serves an item, or "" for
	// mcpguard's own: kind is "tool", "prompt" or "resource", name the
	// tool or prompt name or the resource URI (proxy.Gateway.Owner). It
	// may change as upstreams come and go; it is asked on every decision
	// that reads the resource. Nil means no item has one.
	Upstream func(kind, name string) string
	// Location is the time zone of context.time; nil means UTC.
	Location *time.Location
}

// Engine is a compiled set of policies. It implements guard.Authorizer, is
// immutable and safe for concurrent use.
type Engine struct {
	policies []*compiled
	byID     map[string]*compiled
	idx      index
	rbac     *authz.RBAC
	roles    map[types.EntityUID]types.Entity
	tags     []tagRule
	upstream func(kind, name string) string
	loc      *time.Location
	// resources caches resource entities.
	resources *resourceCache
	// clock caches context.time.
	clock *clockCache
}

// compiled is one policy with what explaining its decisions takes.
type compiled struct {
	id     string
	policy *cedar.Policy
	ast    *xast.Policy
	forbid bool
	// reason is the sentence of a decision this policy determines.
	reason string
	// requiredRoles and requiredScopes are what a YAML tool requirement
	// asks for, when the policy is one.
	requiredRoles, requiredScopes []string
	// mfaMaxAge is the @step_up_mfa annotation.
	mfaMaxAge time.Duration
	// uses are the context attributes the policy may read: a request
	// builds only those its candidate policies need.
	uses ctxFields
	// argKeys are the arguments (and sizes) the policy reads by name; nil
	// with uses&useAllArguments when it reads the record as a whole.
	argKeys []string
}

type tagRule struct {
	pattern string
	tags    []string
}

// Entity types and attribute names of the model (see the package doc).
const (
	typeUser     = types.EntityType("User")
	typeRole     = types.EntityType("Role")
	typeGroup    = types.EntityType("Group")
	typeUpstream = types.EntityType("Upstream")
	typeAction   = types.EntityType("Action")
	typeTool     = types.EntityType("Tool")
	typeResource = types.EntityType("Resource")
	typePrompt   = types.EntityType("Prompt")
)

// New compiles the YAML role model and the Cedar files into an Engine. Its
// errors name the file, line and policy at fault; a policy id used twice
// is an error.
func New(opts Options) (*Engine, error) {
	rbac, err := authz.NewRBAC(opts.RBAC)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		byID:      map[string]*compiled{},
		rbac:      rbac,
		roles:     map[types.EntityUID]types.Entity{},
		upstream:  opts.Upstream,
		loc:       opts.Location,
		resources: &resourceCache{},
		clock:     &clockCache{},
	}
	if e.loc == nil {
		e.loc = time.UTC
	}
	for _, name := range rbac.RoleNames() {
		uid := types.NewEntityUID(typeRole, types.String(name))
		var parents []types.EntityUID
		for _, a := range rbac.Ancestors(name) {
			parents = append(parents, types.NewEntityUID(typeRole, types.String(a)))
		}
		e.roles[uid] = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(parents...)}
	}
	for pattern, tags := range opts.Tags {
		e.tags = append(e.tags, tagRule{pattern: pattern, tags: slices.Clone(tags)})
	}
	sort.Slice(e.tags, func(i, j int) bool { return e.tags[i].pattern < e.tags[j].pattern })

	for _, c := range compileRBAC(opts.RBAC, rbac) {
		if err := e.add(c); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, f := range opts.Files {
		list, err := cedar.NewPolicyListFromBytes(f.Name, f.Data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name, err))
			continue
		}
		for _, p := range list {
			c, err := fromFile(f.Name, p)
			if err == nil {
				err = e.add(c)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.idx = buildIndex(e.policies)
	return e, nil
}

// fromFile reads a hand-written policy's annotations.
func fromFile(file string, p *cedar.Policy) (*compiled, error) {
	pos := p.Position()
	where := fmt.Sprintf("%s:%d", file, pos.Line)
	c := &compiled{id: where, policy: p, ast: (*xast.Policy)(p.AST()), forbid: p.Effect() == cedar.Forbid}
	ann := p.Annotations()
	if v, ok := ann["id"]; ok {
		if strings.TrimSpace(string(v)) == "" {
			return nil, fmt.Errorf("%s: @id is empty", where)
		}
		c.id = string(v)
	}
	if v, ok := ann["reason"]; ok {
		c.reason = string(v)
	}
	if v, ok := ann["step_up_mfa"]; ok {
		secs, err := strconv.Atoi(string(v))
		if err != nil || secs <= 0 {
			return nil, fmt.Errorf("%s: policy %s: @step_up_mfa must be a positive number of seconds, not %q", where, c.id, v)
		}
		if !c.forbid {
			return nil, fmt.Errorf("%s: policy %s: @step_up_mfa belongs on a forbid policy", where, c.id)
		}
		c.mfaMaxAge = time.Duration(secs) * time.Second
	}
	return c, nil
}

func (e *Engine) add(c *compiled) error {
	c.uses, c.argKeys = reads(c.ast)
	if prev, ok := e.byID[c.id]; ok {
		return fmt.Errorf("%s: policy id %q is already used by the policy at %s", position(c), c.id, position(prev))
	}
	e.byID[c.id] = c
	e.policies = append(e.policies, c)
	return nil
}

func position(c *compiled) string {
	pos := c.policy.Position()
	if pos.Filename == "" {
		return "configuration (roles and tools)"
	}
	return fmt.Sprintf("%s:%d", pos.Filename, pos.Line)
}

// Len returns the number of policies, generated ones included.
func (e *Engine) Len() int { return len(e.policies) }

// Policies returns every policy as Cedar text, generated ones first, each
// preceded by its id: what `mcpguard policy show` prints.
func (e *Engine) Policies() []string {
	out := make([]string, 0, len(e.policies))
	for _, c := range e.policies {
		text := string(c.policy.MarshalCedar())
		if _, ok := c.policy.Annotations()["id"]; !ok {
			text = "// " + c.id + "\n" + text
		}
		out = append(out, text)
	}
	return out
}

// Authorize implements guard.Authorizer.
func (e *Engine) Authorize(_ context.Context, p *guard.Principal, a guard.Action) guard.Decision {
	if p == nil {
		return guard.Decision{Reason: "not authenticated"}
	}
	r, ok := e.request(p, a)
	if !ok {
		return guard.Decision{Reason: "method not permitted: " + a.Method, Policies: []string{"default-deny"}}
	}
	if a.Listing {
		return e.list(r)
	}
	return e.explain(r, e.evaluate(r))
}

// outcome is the raw result of evaluating a request.
type outcome struct {
	allowed bool
	// determining are the policies that decided: the forbids that applied
	// (or failed), else the permits that applied.
	determining []*compiled
	// failed is true when a forbid's evaluation failed.
	failed bool
}

// evaluate runs the candidate policies of r.
func (e *Engine) evaluate(r *request) outcome {
	dec, diag := cedar.Authorize(r.cands, r, r.req)
	var out outcome
	for _, de := range diag.Errors {
		if c := e.byID[string(de.PolicyID)]; c != nil && c.forbid {
			out.determining = append(out.determining, c)
			out.failed = true
		}
	}
	if out.failed {
		return out
	}
	out.allowed = bool(dec)
	for _, reason := range diag.Reasons {
		if c := e.byID[string(reason.PolicyID)]; c != nil {
			out.determining = append(out.determining, c)
		}
	}
	return out
}

// candidates are the policies that may apply to one action and resource.
type candidates [4][]*compiled

// uses returns the context attributes the candidates may read, and the
// arguments they read by name.
func (cs *candidates) uses() (u ctxFields, argKeys []string) {
	for _, list := range cs {
		for _, c := range list {
			u |= c.uses
			for _, k := range c.argKeys {
				if !slices.Contains(argKeys, k) {
					argKeys = append(argKeys, k)
				}
			}
		}
	}
	return u, argKeys
}

// All implements cedar.PolicyIterator.
func (cs *candidates) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, list := range cs {
			for _, c := range list {
				if !yield(cedar.PolicyID(c.id), c.policy) {
					return
				}
			}
		}
	}
}

// index finds the policies whose scope can match an action and a resource.
type index struct {
	both     map[[2]types.EntityUID][]*compiled
	action   map[types.EntityUID][]*compiled
	resource map[types.EntityUID][]*compiled
	open     []*compiled
}

func buildIndex(policies []*compiled) index {
	ix := index{
		both:     map[[2]types.EntityUID][]*compiled{},
		action:   map[types.EntityUID][]*compiled{},
		resource: map[types.EntityUID][]*compiled{},
	}
	for _, c := range policies {
		var actions []types.EntityUID
		switch s := c.ast.Action.(type) {
		case xast.ScopeTypeEq:
			actions = []types.EntityUID{s.Entity}
		case xast.ScopeTypeInSet:
			actions = s.Entities
		}
		res, resFixed := c.ast.Resource.(xast.ScopeTypeEq)
		switch {
		case len(actions) > 0 && resFixed:
			for _, a := range actions {
				k := [2]types.EntityUID{a, res.Entity}
				ix.both[k] = append(ix.both[k], c)
			}
		case len(actions) > 0:
			for _, a := range actions {
				ix.action[a] = append(ix.action[a], c)
			}
		case resFixed:
			ix.resource[res.Entity] = append(ix.resource[res.Entity], c)
		default:
			ix.open = append(ix.open, c)
		}
	}
	return ix
}

func (ix *index) candidates(action, resource types.EntityUID) *candidates {
	return &candidates{ix.both[[2]types.EntityUID{action, resource}], ix.action[action], ix.resource[resource], ix.open}
}

// explain turns an outcome into a guard.Decision.
func (e *Engine) explain(r *request, out outcome) guard.Decision {
	ids := make([]string, len(out.determining))
	for i, c := range out.determining {
		ids[i] = c.id
	}
	if out.allowed {
		c := out.determining[0]
		reason := c.reason
		if reason == "" {
			reason = "policy " + c.id + " permits " + r.action.Permission()
		}
		return guard.Decision{Allowed: true, Reason: reason, Policies: ids}
	}
	if len(out.determining) == 0 {
		return guard.Decision{
			Reason:        "no policy permits " + r.action.Permission(),
			RequiredRoles: e.rolesThatPermit(r),
			Policies:      []string{"default-deny"},
		}
	}
	d := guard.Decision{Policies: ids}
	c := out.determining[0]
	switch {
	case out.failed:
		d.Reason = "forbid policy " + c.id + " could not be evaluated for this request, so it applies"
	case c.reason != "":
		d.Reason = c.reason
	default:
		d.Reason = "forbidden by policy " + strings.Join(ids, ", ")
	}
	stepUp := !out.failed
	for _, c := range out.determining {
		d.RequiredRoles = appendNew(d.RequiredRoles, c.requiredRoles...)
		for _, s := range c.requiredScopes {
			if !slices.Contains(r.principal.Scopes, s) {
				d.MissingScopes = appendNew(d.MissingScopes, s)
			}
		}
		if c.mfaMaxAge == 0 {
			stepUp = false
		} else if d.MFAMaxAge == 0 || c.mfaMaxAge < d.MFAMaxAge {
			d.MFAMaxAge = c.mfaMaxAge
		}
	}
	if !stepUp {
		d.MFAMaxAge = 0
	}
	return d
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

// rolesThatPermit asks, for a refused request, which roles would have it
// permitted: the same request with the role added to the principal. Of
// the roles found, those that inherit another found role are left out, so
// the answer names the least privileged roles that would do.
func (e *Engine) rolesThatPermit(r *request) []string {
	var found []string
	for _, role := range e.rbac.RoleNames() {
		if e.rbac.HeldRole(r.held, role) {
			continue
		}
		what := r.withExtraRole(role)
		if e.evaluate(what).allowed {
			found = append(found, role)
		}
	}
	return slices.DeleteFunc(slices.Clone(found), func(role string) bool {
		for _, other := range found {
			if other != role && e.rbac.HeldRole([]string{role}, other) {
				return true
			}
		}
		return false
	})
}

// HeldRole reports whether the roles held, after inheritance, include role.
func (e *Engine) HeldRole(held []string, role string) bool { return e.rbac.HeldRole(held, role) }

// Roles returns the roles p holds before inheritance (its credential's and
// the YAML users: map's), as the principal entity's parents.
func (e *Engine) Roles(p *guard.Principal) []string { return e.rbac.Roles(p) }
