package app

import (
	"context"
	"fmt"
	"io"
)

// Migrate applies the store's pending schema migrations (`mcpguard
// migrate`) and says which store it migrated. `mcpguard serve` applies them
// too, at start; running this first lets an operator upgrade the schema
// before rolling out replicas.
func Migrate(ctx context.Context, out io.Writer, loc string) error {
	st, err := OpenStore(ctx, loc)
	if err != nil {
		return err
	}
	defer st.Close()
	where := "SQLite store in " + loc
	if isPostgres(loc) {
		where = "PostgreSQL store"
	}
	if v, ok := st.(interface {
		SchemaVersion(context.Context) (int, error)
	}); ok {
		n, err := v.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s: schema at version %d\n", where, n)
		return err
	}
	_, err = fmt.Fprintf(out, "%s: schema up to date\n", where)
	return err
}
