package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// PinStore records the pinned definition hash of each upstream tool.
// store.Store implements it.
type PinStore interface {
	// GetToolPin returns the pin of one tool, or store.ErrNotFound.
	GetToolPin(ctx context.Context, upstream, tool string) (*store.ToolPin, error)
	// PutToolPin creates or replaces a pin.
	PutToolPin(ctx context.Context, p *store.ToolPin) error
}

// ToolHash returns the hex SHA-256 of the canonical JSON of a tool's name,
// description, input schema and output schema: the identity of what the
// tool claims to be. Canonical means object keys sorted and no
// insignificant space, so that an upstream re-ordering keys does not count
// as a change.
func ToolHash(t *mcp.Tool) (string, error) {
	var in, out any
	if err := remarshal(t.InputSchema, &in); err != nil {
		return "", fmt.Errorf("input schema: %w", err)
	}
	if t.OutputSchema != nil {
		if err := remarshal(t.OutputSchema, &out); err != nil {
			return "", fmt.Errorf("output schema: %w", err)
		}
	}
	// encoding/json writes map keys sorted, so generic values are
	// canonical.
	b, err := json.Marshal(map[string]any{
		"name":         t.Name,
		"description":  t.Description,
		"inputSchema":  in,
		"outputSchema": out,
	})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// checkPin applies u's pinning to tool t (exposed as exp). It returns why
// the tool is blocked, or "" to let it through.
func (g *Gateway) checkPin(ctx context.Context, u *upstream, t *mcp.Tool, exp string) string {
	if g.opts.Pins == nil || u.cfg.Pinning == PinOff {
		return ""
	}
	hash, err := ToolHash(t)
	if err != nil {
		return "its definition cannot be hashed: " + err.Error()
	}
	pin, err := g.opts.Pins.GetToolPin(ctx, u.cfg.Name, t.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		now := time.Now()
		if err := g.opts.Pins.PutToolPin(ctx, &store.ToolPin{Upstream: u.cfg.Name, Tool: t.Name, Hash: hash, PinnedAt: now}); err != nil {
			g.logger.Error("pinning a tool failed", "upstream", u.cfg.Name, "tool", t.Name, "err", err)
			if u.cfg.Pinning == PinBlock {
				return "its definition could not be pinned (store error); try again later"
			}
			return ""
		}
		g.logger.Debug("tool definition pinned on first sight", "upstream", u.cfg.Name, "tool", t.Name, "sha256", hash)
		return ""
	case err != nil:
		g.logger.Error("reading a tool pin failed", "upstream", u.cfg.Name, "tool", t.Name, "err", err)
		if u.cfg.Pinning == PinBlock {
			return "its pinned definition could not be read (store error); try again later"
		}
		return ""
	case pin.Hash == hash: // ct:public: digests of public tool definitions
		return ""
	}
	reason := fmt.Sprintf("the definition of tool %s changed since it was pinned (pinned sha256 %.12s, now %.12s); an administrator must review it and run `mcpguard tools pin --upstream %s`", exp, pin.Hash, hash, u.cfg.Name)
	rec := &guard.Record{Time: time.Now(), Method: "tools/pin", Target: exp, Reason: reason, Policies: []string{"pinning:" + string(u.cfg.Pinning)}}
	if u.cfg.Pinning == PinBlock {
		rec.Decision = guard.Denied
		g.logger.Warn("tool blocked: definition changed since pinned", "upstream", u.cfg.Name, "tool", t.Name, "pinned", pin.Hash, "now", hash)
	} else {
		rec.Decision = guard.Allowed
		rec.Reason = "flagged: " + reason
		g.logger.Warn("tool flagged: definition changed since pinned", "upstream", u.cfg.Name, "tool", t.Name, "pinned", pin.Hash, "now", hash)
	}
	if g.opts.Audit != nil {
		if err := g.opts.Audit.Record(ctx, rec); err != nil {
			g.logger.Error("auditing a pinning decision failed", "err", err)
		}
	}
	if u.cfg.Pinning == PinBlock {
		return reason
	}
	return ""
}

// PinResult is the outcome of Pin for one tool.
type PinResult struct {
	Upstream string
	Tool     string
	Hash     string
	// Previous is the hash pinned before, "" if the tool was new.
	Previous string
}

// Pin connects to the named upstreams (all when names is empty), lists
// their tools and records each current definition as pinned: the review
// step after a change was blocked. It does not register anything.
func Pin(ctx context.Context, opts Options, names []string) ([]PinResult, error) {
	if opts.Pins == nil {
		return nil, errors.New("no pin store")
	}
	var out []PinResult
	err := catalogs(ctx, opts, names, func(_ *Gateway, u *upstream, cat *catalog) error {
		for _, t := range cat.tools {
			hash, err := ToolHash(t)
			if err != nil {
				return fmt.Errorf("upstream %s tool %s: %w", u.cfg.Name, t.Name, err)
			}
			r := PinResult{Upstream: u.cfg.Name, Tool: t.Name, Hash: hash}
			if old, err := opts.Pins.GetToolPin(ctx, u.cfg.Name, t.Name); err == nil {
				r.Previous = old.Hash
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := opts.Pins.PutToolPin(ctx, &store.ToolPin{Upstream: u.cfg.Name, Tool: t.Name, Hash: hash, PinnedAt: time.Now()}); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// ListTools connects to every upstream and returns their tools under the
// names the gateway exposes them by (for `mcpguard policy check`, which
// types policies against the tools' schemas). It registers nothing.
func ListTools(ctx context.Context, opts Options) ([]*mcp.Tool, error) {
	var out []*mcp.Tool
	err := catalogs(ctx, opts, nil, func(g *Gateway, u *upstream, cat *catalog) error {
		for _, t := range cat.tools {
			exposed := *t
			exposed.Name = g.exposed(u, t.Name)
			out = append(out, &exposed)
		}
		return nil
	})
	return out, err
}

// catalogs connects to the named upstreams (all when names is empty) and
// hands each one's catalog to fn, stopping at the first error.
func catalogs(ctx context.Context, opts Options, names []string, fn func(*Gateway, *upstream, *catalog) error) error {
	g, err := New(opts)
	if err != nil {
		return err
	}
	defer g.Close()
	for _, u := range g.upstreams {
		if len(names) > 0 && !contains(names, u.cfg.Name) {
			continue
		}
		c, err := u.get(ctx, "")
		if err != nil {
			return err
		}
		cat, err := u.list(ctx, c)
		if err != nil {
			return fmt.Errorf("upstream %s: %w", u.cfg.Name, err)
		}
		if err := fn(g, u, cat); err != nil {
			return err
		}
	}
	for _, n := range names {
		if g.byName[n] == nil {
			return fmt.Errorf("no upstream named %s", n)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
