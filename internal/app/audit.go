package app

import (
	"context"
	"io"

	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/guard"
)

// AuditTail prints the last n matching records of the audit log at path
// and, with follow, every matching record appended later until ctx is done.
func AuditTail(ctx context.Context, out io.Writer, path string, n int, f audit.Filter, follow bool) error {
	recs, err := audit.ReadLast(path, n, f)
	if err != nil {
		return err
	}
	if err := audit.WriteTable(out, recs); err != nil {
		return err
	}
	if !follow {
		return nil
	}
	err = audit.Follow(ctx, path, f, func(r guard.Record) error {
		return audit.WriteTable(out, []guard.Record{r})
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
