package metrics

import "strings"

// The reason label values of auth_failures_total, in label-index order.
var authReasons = [...]string{
	"no_credentials",
	"locked_out",
	"expired",
	"revoked",
	"malformed",
	"bad_signature",
	"unknown_key",
	"wrong_audience",
	"wrong_issuer",
	Other,
}

const (
	reasonNoCredentials = iota
	reasonLockedOut
	reasonExpired
	reasonRevoked
	reasonMalformed
	reasonBadSignature
	reasonUnknownKey
	reasonWrongAudience
	reasonWrongIssuer
	reasonOther
	numAuthReasons
)

// maxReasonScan bounds how much of a reason the classifier reads.
const maxReasonScan = 256

// authReasonRules map phrases of the reasons mcpguard's authenticators give
// (authn/apikey, authn/jwt, guard) to reason label indexes. The first rule
// with a phrase contained in the reason wins.
var authReasonRules = [...]struct {
	phrases []string
	reason  int
}{
	{[]string{"no credential"}, reasonNoCredentials},
	{[]string{"expired"}, reasonExpired},
	{[]string{"revoked"}, reasonRevoked},
	{[]string{"bad signature", "wrong secret", "algorithm not allowed", "invalid signature"}, reasonBadSignature},
	{[]string{"unknown key", "no key for token"}, reasonUnknownKey},
	{[]string{"wrong audience", "invalid audience"}, reasonWrongAudience},
	{[]string{"wrong issuer", "invalid issuer"}, reasonWrongIssuer},
	{[]string{"malformed", "not a bearer token", "too large", "missing ", "invalid claims"}, reasonMalformed},
	{[]string{"locked out"}, reasonLockedOut},
}

// classifyAuthFailure maps the free-text reason of an AUTH_FAILED record to
// an index in authReasons. Only the first maxReasonScan bytes are read, and
// case is ignored.
//
// A refusal that also locked its source out ("…: token expired; source
// locked out for 300s") is classified by its cause; only a request refused
// because its source was already locked out counts as locked_out.
func classifyAuthFailure(reason string) int {
	if len(reason) > maxReasonScan {
		reason = reason[:maxReasonScan]
	}
	if i := strings.Index(reason, "; source locked out"); i > 0 {
		reason = reason[:i]
	}
	if hasUpper(reason) {
		reason = strings.ToLower(reason)
	}
	for _, rule := range authReasonRules {
		for _, p := range rule.phrases {
			if strings.Contains(reason, p) {
				return rule.reason
			}
		}
	}
	return reasonOther
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}
