package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/policy"
)

// PolicyOptions are the policy engine's options from the configuration:
// the YAML roles, users and tool requirements, tags and time zone (the
// *.cedar files of policies.dir are read by policy.Set).
func PolicyOptions(cfg *config.Config) (policy.Options, error) {
	loc, err := time.LoadLocation(cfg.Policies.TimeZone)
	if err != nil {
		return policy.Options{}, fmt.Errorf("policies.time_zone: %w", err)
	}
	return policy.Options{RBAC: Policy(cfg), Tags: cfg.Policies.Tags, Location: loc}, nil
}

// LoadPolicies compiles the configuration's roles and the policies of
// policies.dir. The default directory may be missing; a configured one
// must exist. upstream, when not nil, tells which upstream serves an item
// (policy.Options.Upstream).
func LoadPolicies(cfg *config.Config, upstream func(kind, name string) string) (*policy.Set, error) {
	opts, err := PolicyOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts.Upstream = upstream
	set, err := policy.NewSet(opts, cfg.Policies.Dir, cfg.Policies.Dir == config.DefaultPolicyDir)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	return set, nil
}

// watchPolicies reloads the policy set when its files change and on
// SIGHUP (through hup), until ctx ends.
func watchPolicies(ctx context.Context, set *policy.Set, interval time.Duration, logger *slog.Logger, hup *hupReloader) {
	set.Logger = logger
	go set.Watch(ctx, interval)
	hup.Add("policies", set.Reload)
}
