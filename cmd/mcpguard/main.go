// Command mcpguard is a security gateway and server for the Model Context
// Protocol: every MCP request is authenticated, rate limited, authorized and
// audited before it runs.
//
//	mcpguard serve --demo          # HTTP on 127.0.0.1:8080/mcp with demo data
//	mcpguard serve --stdio         # MCP on stdin/stdout; MCP_API_KEY from env
//	mcpguard keys create --name alice --role developer
//	mcpguard audit tail --decision DENIED
//
// This file holds flags and wiring only; the work is in internal/app and the
// library packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/store"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpguard:", err)
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	configPath string
	dataDir    string
}

// load reads the configuration: --config, else ./mcpguard.yaml when present,
// else the defaults; MCPGUARD_* variables override; --data-dir overrides.
// withConfig adapts a command body that needs the loaded configuration to
// cobra's RunE: the configuration is loaded (file, environment, --data-dir)
// before the body runs.
func (g *globals) withConfig(run func(c *cobra.Command, cfg *config.Config, args []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		cfg, err := g.load()
		if err != nil {
			return err
		}
		return run(c, cfg, args)
	}
}

func (g *globals) load() (*config.Config, error) {
	path := g.configPath
	if path == "" {
		if v, ok := os.LookupEnv("MCPGUARD_CONFIG"); ok {
			path = v
		} else if _, err := os.Stat("mcpguard.yaml"); err == nil {
			path = "mcpguard.yaml"
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if g.dataDir != "" {
		cfg.DataDir = g.dataDir
	}
	return cfg, nil
}

func root() *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:           "mcpguard",
		Short:         "A security gateway and server for the Model Context Protocol",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.AddCommand(loginCmd(), connectCmd())   // remote servers: mcpclient
	cmd.AddCommand(certsCmd(), sessionsCmd(g)) // TLS certificates, MCP sessions
	cmd.PersistentFlags().StringVar(&g.configPath, "config", "", "configuration file (default ./mcpguard.yaml when present, or $MCPGUARD_CONFIG)")
	cmd.PersistentFlags().StringVar(&g.dataDir, "data-dir", "", "data directory holding the store (overrides data_dir)")
	cmd.AddCommand(serveCmd(g), migrateCmd(g), keysCmd(g), tokensCmd(g), usersCmd(g), clientsCmd(g), secretsCmd(g), auditCmd(g), configCmd(g), policyCmd(g), toolsCmd(g), upstreamsCmd(g), &cobra.Command{
		Use:   "version",
		Short: "Print mcpguard's version",
		Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), "mcpguard", app.Version) },
	})
	return cmd
}

func serveCmd(g *globals) *cobra.Command {
	var demo, stdio bool
	var addr, auditLog, database string
	var tlsFlags tlsFlags
	var upstreams []string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve MCP over streamable HTTP (default) or stdio, behind the security pipeline",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			if addr != "" {
				cfg.Server.Addr = addr
			}
			if auditLog != "" {
				cfg.Audit.Log = auditLog
			}
			if database != "" {
				cfg.Database = database
			}
			tlsFlags.apply(&cfg.Server.TLS)
			return app.Serve(c.Context(), app.ServeOptions{
				Config: cfg, Demo: demo, Stdio: stdio,
				Status: os.Stderr, Stdin: os.Stdin, Stdout: os.Stdout,
				Upstreams: upstreams,
			})
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&demo, "demo", false, "create (if missing) a demo database and demo identities admin, developer, viewer, and serve the built-in tools")
	f.BoolVar(&stdio, "stdio", false, "serve MCP on stdin/stdout; credentials from MCP_API_KEY or MCP_AUTH_TOKEN")
	f.StringVar(&addr, "addr", "", "listen address (overrides server.addr; default 127.0.0.1:8080)")
	f.StringVar(&auditLog, "audit-log", "", `audit log file, "-" for stderr (overrides audit.log)`)
	f.StringVar(&database, "database", "", "SQLite database for the built-in tools (overrides database)")
	tlsFlags.register(f)
	f.StringArrayVar(&upstreams, "upstream", nil, `front an existing MCP server: 'name=command args...' (stdio) or 'name=https://host/mcp'; repeatable`)
	return cmd
}

func migrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's pending schema migrations (serve also does, at start)",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.Migrate(c.Context(), c.OutOrStdout(), cfg.StoreLocation())
		}),
	}
}

func keysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage API keys"}
	var o app.KeyCreateOptions
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key; its secret is printed once",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			o.DataDir, o.KnownRoles = cfg.StoreLocation(), roleNames(cfg)
			return app.KeysCreate(c.Context(), c.OutOrStdout(), o)
		}),
	}
	create.Flags().StringVar(&o.Name, "name", "", "owner of the key; becomes the audited user name (required)")
	create.Flags().StringSliceVar(&o.Roles, "role", nil, "role granted to the key (repeatable)")
	create.Flags().StringSliceVar(&o.Scopes, "scope", nil, "scope granted to the key (repeatable)")
	create.Flags().DurationVar(&o.Expires, "expires", 0, "lifetime, e.g. 720h (default: never expires)")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.KeysList(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), time.Now())
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key; running servers refuse it within auth.revocation_recheck (default 1s)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			return app.KeysRevoke(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), args[0], time.Now())
		}),
	}
	var grace time.Duration
	rotate := &cobra.Command{
		Use:   "rotate ID",
		Short: "Give an API key a new secret (printed once); the old one works for --grace, its uses audited",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			return app.KeysRotate(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), args[0], grace, time.Now())
		}),
	}
	rotate.Flags().DurationVar(&grace, "grace", 24*time.Hour, "how long the old secret keeps working (0 = not at all)")
	var publishFor time.Duration
	rotateSigning := &cobra.Command{
		Use:   "rotate-signing",
		Short: "Rotate the authorization server's token signing key: published now, signing after --publish-for",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.KeysRotateSigning(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv, publishFor, time.Now())
		}),
	}
	rotateSigning.Flags().DurationVar(&publishFor, "publish-for", 10*time.Minute, "how long the new key is published before it signs (longer than clients cache the JWKS)")
	cmd.AddCommand(create, list, revoke, rotate, rotateSigning)
	return cmd
}

func tokensCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Manage JWT revocations"}
	var until time.Duration
	revoke := &cobra.Command{
		Use:   "revoke JTI",
		Short: "Revoke a JWT by its jti claim",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			var exp time.Time
			if until > 0 {
				exp = time.Now().Add(until)
			}
			return app.TokensRevoke(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), args[0], exp)
		}),
	}
	revoke.Flags().DurationVar(&until, "keep-for", 0, "how long to keep the entry (the token's remaining lifetime); default forever")
	cmd.AddCommand(revoke)
	return cmd
}

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var f audit.Filter
	var n int
	var follow bool
	var file string
	var since time.Duration
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Show the last audit records, optionally filtered, optionally following",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				cfg, err := g.load()
				if err != nil {
					return err
				}
				file = cfg.Audit.Log
			}
			if file == "-" {
				return errors.New("the audit log goes to stderr; pass --file PATH")
			}
			if since > 0 {
				f.Since = time.Now().Add(-since)
			}
			return app.AuditTail(c.Context(), c.OutOrStdout(), file, n, f, follow)
		},
	}
	tail.Flags().StringVar(&f.Decision, "decision", "", "only this decision: ALLOWED, DENIED, AUTH_FAILED, RATE_LIMITED, ERROR")
	tail.Flags().StringVar(&f.User, "user", "", "only this user")
	tail.Flags().StringVar(&f.Tool, "tool", "", "only this tool (target)")
	tail.Flags().DurationVar(&since, "since", 0, "only records newer than this, e.g. 1h")
	tail.Flags().IntVarP(&n, "lines", "n", 20, "how many records to show")
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records")
	tail.Flags().StringVar(&file, "file", "", "audit log file (default: audit.log from the configuration)")
	var q store.AuditQuery
	var qSince, qUntil time.Duration
	var format string
	query := &cobra.Command{
		Use:   "query",
		Short: "Query audit records in the store (the newest N matching, printed oldest first)",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			if qSince < 0 || qUntil < 0 {
				return errors.New("--since and --until take positive durations, e.g. 1h")
			}
			now := time.Now()
			if qSince > 0 {
				q.Since = now.Add(-qSince)
			}
			if qUntil > 0 {
				q.Until = now.Add(-qUntil)
			}
			return app.AuditQuery(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), q, format)
		}),
	}
	qf := query.Flags()
	qf.DurationVar(&qSince, "since", 0, "only records newer than this, e.g. 1h")
	qf.DurationVar(&qUntil, "until", 0, "only records older than this, e.g. 10m")
	qf.StringVar(&q.Decision, "decision", "", "only this decision: ALLOWED, DENIED, AUTH_FAILED, RATE_LIMITED, ERROR")
	qf.StringVar(&q.User, "user", "", "only this user")
	qf.StringVar(&q.Tool, "tool", "", "only this tool (target)")
	qf.IntVarP(&q.Limit, "limit", "n", store.DefaultAuditLimit, "at most this many records (max 10000)")
	qf.StringVar(&format, "format", app.AuditFormatTable, "table, or json (JSON Lines, one record per line, for SIEM ingestion)")
	var hmacRef, pubFile string
	verify := &cobra.Command{
		Use:   "verify [FILE...]",
		Short: "Verify the audit chain: reports the first tampered, missing, reordered or inserted record (exit 1) or \"N records verified\"",
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			o := app.AuditVerifyOptions{Files: args, PublicKeyFile: pubFile}
			if len(o.Files) == 0 {
				o.Files = []string{cfg.Audit.Log}
			}
			ref := config.SecretRef(hmacRef)
			if hmacRef == "" && cfg.Audit.HMACKey != "" {
				ref = cfg.Audit.HMACKey
			} else if hmacRef == "" {
				ref = config.SecretRef("file:" + filepath.Join(cfg.DataDir, app.AuditHMACKeyFile))
			}
			if hmacRef != "none" {
				for _, r := range append([]config.SecretRef{ref}, cfg.Audit.PreviousHMACKeys...) {
					k, err := r.Resolve(os.LookupEnv)
					if err != nil {
						return fmt.Errorf("HMAC key: %w (pass --hmac-key none to check only signatures)", err)
					}
					o.HMACKeys = append(o.HMACKeys, k)
				}
			}
			if pubFile == "" {
				def := app.SigningKeyPath(cfg) + ".pub"
				if _, err := os.Stat(def); err == nil {
					o.PublicKeyFile = def
				}
			}
			return app.AuditVerify(c.OutOrStdout(), o)
		}),
	}
	verify.Flags().StringVar(&hmacRef, "hmac-key", "", "HMAC key reference (env:NAME or file:/path; default: audit.hmac_key or the data directory's key; none: skip macs)")
	verify.Flags().StringVar(&pubFile, "public-key", "", "checkpoint public key (default: the signing key's .pub beside it)")

	var ef audit.Filter
	var en int
	var eformat, efile string
	export := &cobra.Command{
		Use:   "export",
		Short: "Export audit records for a SIEM: CEF or JSON Lines",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if efile == "" {
				cfg, err := g.load()
				if err != nil {
					return err
				}
				efile = cfg.Audit.Log
			}
			return app.AuditExport(c.OutOrStdout(), efile, en, ef, eformat)
		},
	}
	export.Flags().StringVar(&eformat, "format", "cef", "cef or jsonl")
	export.Flags().IntVarP(&en, "lines", "n", 1000, "how many records (the newest)")
	export.Flags().StringVar(&ef.Decision, "decision", "", "only this decision")
	export.Flags().StringVar(&ef.User, "user", "", "only this user")
	export.Flags().StringVar(&efile, "file", "", "audit log file (default: audit.log from the configuration)")
	cmd.AddCommand(tail, query, verify, export)
	return cmd
}

func configCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or print configuration"}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file; errors name file, line and field",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := config.Check(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: OK\n", args[0])
			return nil
		},
	}
	example := &cobra.Command{
		Use:   "example",
		Short: "Print a documented example configuration",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := c.OutOrStdout().Write(config.Example)
			return err
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (defaults, file, environment); secrets appear only as their references",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return config.Dump(c.OutOrStdout(), cfg)
		}),
	}
	cmd.AddCommand(check, example, show)
	return cmd
}
