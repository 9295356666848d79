package main

import (
	"os"
	"time"

	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/spf13/cobra"
)

func policyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test, check and show the authorization policies (roles and policies/*.cedar)"}

	var o app.PolicyTestOptions
	var mfaAge string
	test := &cobra.Command{
		Use:   "test",
		Short: "Decide one request and print the decision and the policies that determined it",
		Example: `  mcpguard policy test --principal dan --roles developer --resource execute_sql \
      --context '{"arguments":{"schema":"billing"},"ip":"10.0.0.5"}'
  mcpguard policy test --principal ann --roles admin --resource delete_users --mfa-age 10m --expect deny`,
		Args: cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			o.MFAAge = -1
			if mfaAge != "" {
				d, err := time.ParseDuration(mfaAge)
				if err != nil {
					return err
				}
				o.MFAAge = d
			}
			return app.PolicyTest(c.OutOrStdout(), cfg, o)
		}),
	}
	f := test.Flags()
	f.StringVar(&o.Subject, "principal", "", "the caller's subject (a key name, a token's sub)")
	f.StringVar(&o.Method, "method", "api_key", "how it authenticated: api_key, jwt or oauth")
	f.StringVar(&o.Issuer, "issuer", "mcpguard", "the token's issuer")
	f.StringVar(&o.ClientID, "client-id", "", "the OAuth client")
	f.StringSliceVar(&o.Roles, "roles", nil, "the roles its credential carries")
	f.StringSliceVar(&o.Groups, "groups", nil, "its identity provider's groups")
	f.StringSliceVar(&o.Scopes, "scopes", nil, "its OAuth scopes")
	f.StringVar(&mfaAge, "mfa-age", "", "how long ago it completed a second factor (e.g. 2m); default never")
	f.StringVar(&o.Action, "action", "tools/call", "the MCP method: tools/call, resources/read, prompts/get")
	f.StringVar(&o.Resource, "resource", "", "the tool name, resource URI or prompt name")
	f.StringVar(&o.Context, "context", "", `JSON: {"arguments":{…},"ip":"…","time":"RFC 3339","transport":"http|stdio","protocol_version":"…"}`)
	f.BoolVar(&o.List, "list", false, "ask whether the item is listed (arguments unknown) instead of called")
	f.StringVar(&o.Expect, "expect", "", "allow or deny: exit with an error on another decision (for CI)")

	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the policies against a schema generated from the live tool list",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.PolicyCheck(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv)
		}),
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print every policy in force, the roles compiled to Cedar first",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.PolicyShow(c.OutOrStdout(), cfg)
		}),
	}
	schema := &cobra.Command{
		Use:   "schema",
		Short: "Print the Cedar schema of the request model and the live tools",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.PolicySchema(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv)
		}),
	}
	cmd.AddCommand(test, check, show, schema)
	return cmd
}
