package postgres

import (
	"context"
	"fmt"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

var (
	_ store.ToolPinStore        = (*Store)(nil)
	_ store.UpstreamStatusStore = (*Store)(nil)
)

// GetToolPin implements store.ToolPinStore.
func (s *Store) GetToolPin(ctx context.Context, upstream, tool string) (*store.ToolPin, error) {
	p, err := codec.ScanToolPin(s.pool.QueryRow(ctx, `SELECT `+codec.ToolPinColumns+` FROM tool_pins WHERE upstream = $1 AND tool = $2`, upstream, tool))
	if err != nil {
		return nil, notFound(err, "get tool pin")
	}
	return p, nil
}

// PutToolPin implements store.ToolPinStore.
func (s *Store) PutToolPin(ctx context.Context, p *store.ToolPin) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO tool_pins (upstream, tool, hash, pinned_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (upstream, tool) DO UPDATE SET hash = excluded.hash, pinned_at = excluded.pinned_at`,
		p.Upstream, p.Tool, p.Hash, p.PinnedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("store: put tool pin: %w", err)
	}
	return nil
}

// ListToolPins implements store.ToolPinStore.
func (s *Store) ListToolPins(ctx context.Context) ([]*store.ToolPin, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+codec.ToolPinColumns+` FROM tool_pins ORDER BY upstream, tool`)
	return collect(rows, err, "list tool pins", codec.ScanToolPin)
}

// PutUpstreamStatus implements store.UpstreamStatusStore.
func (s *Store) PutUpstreamStatus(ctx context.Context, st *store.UpstreamStatus) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO upstream_status (name, status, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
		st.Name, string(st.Status), st.UpdatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("store: put upstream status: %w", err)
	}
	return nil
}

// ListUpstreamStatus implements store.UpstreamStatusStore.
func (s *Store) ListUpstreamStatus(ctx context.Context) ([]*store.UpstreamStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, status, updated_at FROM upstream_status ORDER BY name`)
	return collect(rows, err, "list upstream status", func(row codec.Scanner) (*store.UpstreamStatus, error) {
		var st store.UpstreamStatus
		var status string
		var at int64
		if err := row.Scan(&st.Name, &status, &at); err != nil {
			return nil, err
		}
		st.Status, st.UpdatedAt = []byte(status), codec.FromUnixNano(at)
		return &st, nil
	})
}
