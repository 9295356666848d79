package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/auditstore"
	"github.com/mcpguard/mcpguard/store"
)

// Audit query output formats.
const (
	// AuditFormatTable is an aligned table for people (audit.WriteTable).
	AuditFormatTable = "table"
	// AuditFormatJSON is JSON Lines, one guard.Record per line, for SIEM
	// ingestion.
	AuditFormatJSON = "json"
)

// AuditQuery writes the audit records of the store in dataDir that match q
// to out, in format "table" or "json": the newest q.Limit matching records
// (see store.AuditQuery.EffectiveLimit), oldest first, like `audit tail`.
// The query and format are checked before the store is opened, and a data
// directory without a store is an error rather than a new empty store.
func AuditQuery(ctx context.Context, out io.Writer, dataDir string, q store.AuditQuery, format string) error {
	if format != AuditFormatTable && format != AuditFormatJSON {
		return fmt.Errorf("unknown format %q: use %s or %s", format, AuditFormatTable, AuditFormatJSON)
	}
	if err := q.Validate(); err != nil {
		return err
	}
	path := filepath.Join(dataDir, StoreFile)
	if isPostgres(dataDir) {
		// A database, not a directory: nothing to check beforehand.
	} else if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no mcpguard store at %s: pass --data-dir, or start `mcpguard serve` first", path)
	} else if err != nil {
		return fmt.Errorf("audit query: %w", err)
	}
	s, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	recs, err := s.QueryAudit(ctx, q)
	if err != nil {
		return err
	}
	slices.Reverse(recs) // the store answers newest first
	if format == AuditFormatJSON {
		return auditstore.WriteJSONLines(out, recs)
	}
	return audit.WriteTable(out, recs)
}
