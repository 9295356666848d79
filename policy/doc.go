// Package policy is mcpguard's attribute-based authorizer: Cedar policies
// (github.com/cedar-policy/cedar-go) evaluated for every MCP request, with
// the YAML role model of package authz compiled into equivalent Cedar so
// that one evaluator decides everything.
//
// # The request a policy sees
//
// Principal: User::"<guard.Principal.ID()>", a member (parent) of
// Role::"<role>" for each role it holds (the credential's roles plus the
// YAML users: map, except for scope-limited OAuth tokens) and of
// Group::"<group>" for each identity-provider group. Roles are members of
// the roles they inherit, so `principal in Role::"viewer"` holds for an
// admin that inherits viewer. Attributes:
//
//	subject, issuer, method, client_id: String
//	roles, groups, scopes: Set<String>
//	mfa: Bool          a second factor was completed
//	mfa_age: Long      seconds since it was (a huge number if never)
//	auth_age: Long     seconds since the caller signed in (huge if unknown)
//
// Action: Action::"tools/call", Action::"resources/read" or
// Action::"prompts/get" (listing methods are decided item by item with the
// action that would use the item).
//
// Resource: Tool::"<name>", Resource::"<uri>" or Prompt::"<name>", a member
// of Upstream::"<upstream>" when it comes from an upstream server, with
// attributes name (String), upstream (String, "" for built-in tools), tags
// (Set<String>, from configuration) and requirement (String, the YAML
// per-tool requirement that governs it, "" if none).
//
// Context:
//
//	arguments: Record       the tools/call arguments (JSON objects become
//	                        records, arrays sets, integers Long, other
//	                        numbers decimal or String; null is omitted)
//	sizes: Record           for each top-level argument, its length
//	                        (array elements, object keys, string bytes)
//	now: datetime           when the request arrived
//	time: {hour, minute, weekday, date}  in the configured time zone;
//	                        weekday 0 is Sunday, date "2006-01-02"
//	ip: ipaddr              the client's address (absent on stdio)
//	transport, protocol_version, permission: String
//	credential_grants: Bool a permission the credential itself carries
//	                        (a JWT "permissions" claim) matches
//
// # Semantics
//
// Deny by default; a forbid that applies overrides every permit (Cedar's
// rules). mcpguard departs from Cedar in one point, to fail closed: a
// forbid policy whose evaluation fails (it reads an argument the call did
// not send, an ip on stdio) denies, as if it applied. Guard optional
// attributes with `has`.
//
// The same evaluation filters lists and decides calls. For a list the
// arguments are not known yet, so the engine evaluates partially, with
// context.arguments and context.sizes unknown: an item is listed when some
// call could be permitted (a permit whose only open conditions concern
// arguments) and no forbid applies regardless of the arguments. An item
// hidden from a list is therefore refused whatever its arguments, and a
// listed item is refused only for arguments a policy rules out.
//
// # Annotations
//
// @id("...") names a policy in decisions, audit records and errors
// (otherwise "<file>:<line>"). @reason("...") is the sentence a decision
// gives. @step_up_mfa("<seconds>") on a forbid says that a second factor
// at most that old would lift it: an OAuth caller refused only by such
// policies is asked to re-authorize (HTTP 403 insufficient_scope with the
// "mfa" scope) instead of being refused outright. The policy itself must
// say so in Cedar, for example
//
//	@id("delete-users-needs-fresh-mfa")
//	@step_up_mfa("300")
//	forbid(principal, action == Action::"tools/call", resource == Tool::"delete_users")
//	unless { principal.mfa_age <= 300 };
//
// # Cost
//
// Policies are indexed by the action and resource their scope names, so a
// decision evaluates only the policies that can apply to its action and
// resource (plus those whose scope names neither): thousands of policies
// about other tools cost nothing.
package policy
