package sqlite

import (
	"context"
	"fmt"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

var _ store.ToolPinStore = (*Store)(nil)

// GetToolPin implements store.ToolPinStore.
func (s *Store) GetToolPin(ctx context.Context, upstream, tool string) (*store.ToolPin, error) {
	p, err := codec.ScanToolPin(s.db.QueryRowContext(ctx, `SELECT `+codec.ToolPinColumns+` FROM tool_pins WHERE upstream = ? AND tool = ?`, upstream, tool))
	if err != nil {
		return nil, notFound(err, "get tool pin")
	}
	return p, nil
}

// PutToolPin implements store.ToolPinStore.
func (s *Store) PutToolPin(ctx context.Context, p *store.ToolPin) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO tool_pins (upstream, tool, hash, pinned_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(upstream, tool) DO UPDATE SET hash = excluded.hash, pinned_at = excluded.pinned_at`,
		p.Upstream, p.Tool, p.Hash, p.PinnedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("store: put tool pin: %w", err)
	}
	return nil
}

// ListToolPins implements store.ToolPinStore.
func (s *Store) ListToolPins(ctx context.Context) ([]*store.ToolPin, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+codec.ToolPinColumns+` FROM tool_pins ORDER BY upstream, tool`)
	if err != nil {
		return nil, fmt.Errorf("store: list tool pins: %w", err)
	}
	defer rows.Close()
	var out []*store.ToolPin
	for rows.Next() {
		p, err := codec.ScanToolPin(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list tool pins: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list tool pins: %w", err)
	}
	return out, nil
}

var _ store.UpstreamStatusStore = (*Store)(nil)

// PutUpstreamStatus implements store.UpstreamStatusStore.
func (s *Store) PutUpstreamStatus(ctx context.Context, st *store.UpstreamStatus) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO upstream_status (name, status, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
		st.Name, string(st.Status), st.UpdatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("store: put upstream status: %w", err)
	}
	return nil
}

// ListUpstreamStatus implements store.UpstreamStatusStore.
func (s *Store) ListUpstreamStatus(ctx context.Context) ([]*store.UpstreamStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, status, updated_at FROM upstream_status ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list upstream status: %w", err)
	}
	defer rows.Close()
	var out []*store.UpstreamStatus
	for rows.Next() {
		var st store.UpstreamStatus
		var status string
		var at int64
		if err := rows.Scan(&st.Name, &status, &at); err != nil {
			return nil, fmt.Errorf("store: list upstream status: %w", err)
		}
		st.Status, st.UpdatedAt = []byte(status), codec.FromUnixNano(at)
		out = append(out, &st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list upstream status: %w", err)
	}
	return out, nil
}
