package store

import (
	"context"
	"time"
)

// ToolPin is the pinned definition of one upstream tool (package proxy):
// the SHA-256 of its canonical name, description and schemas when it was
// first seen or last reviewed.
type ToolPin struct {
	// Upstream and Tool identify the tool by the upstream's configured
	// name and the tool's own (un-prefixed) name.
	Upstream string
	Tool     string
	// Hash is the hex SHA-256 of the pinned definition.
	Hash string
	// PinnedAt is when the definition was pinned.
	PinnedAt time.Time
}

// ToolPinStore holds tool pins.
type ToolPinStore interface {
	// GetToolPin returns one pin, or ErrNotFound.
	GetToolPin(ctx context.Context, upstream, tool string) (*ToolPin, error)
	// PutToolPin creates or replaces a pin.
	PutToolPin(ctx context.Context, p *ToolPin) error
	// ListToolPins returns every pin, by upstream and tool.
	ListToolPins(ctx context.Context) ([]*ToolPin, error)
}

// UpstreamStatus is the last health report of one gateway upstream,
// written by the running mcpguard and read by `mcpguard upstreams status`.
type UpstreamStatus struct {
	// Name is the upstream's configured name.
	Name string
	// Status is the report as JSON (package proxy's Status).
	Status []byte
	// UpdatedAt is when it was written; an old one means the server that
	// wrote it is no longer running.
	UpdatedAt time.Time
}

// UpstreamStatusStore holds upstream health reports.
type UpstreamStatusStore interface {
	// PutUpstreamStatus creates or replaces an upstream's report.
	PutUpstreamStatus(ctx context.Context, s *UpstreamStatus) error
	// ListUpstreamStatus returns every report, by name.
	ListUpstreamStatus(ctx context.Context) ([]*UpstreamStatus, error)
}
