package main

import (
	"errors"

	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/spf13/cobra"
)

func sessionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List and revoke MCP sessions (Mcp-Session-Id) bound to their principals",
	}
	var listUser string
	list := &cobra.Command{
		Use:   "list",
		Short: "List live sessions",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.SessionsList(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), listUser)
		}),
	}
	list.Flags().StringVar(&listUser, "user", "", "only this user's sessions")
	var revokeUser string
	revoke := &cobra.Command{
		Use:   "revoke [SESSION_ID] | --user USER",
		Short: "End one session, or every session of a user; the next request presenting it gets 404",
		Args:  cobra.MaximumNArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			if (id == "") == (revokeUser == "") {
				return errors.New("give either a session id or --user USER")
			}
			return app.SessionsRevoke(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), revokeUser, id)
		}),
	}
	revoke.Flags().StringVar(&revokeUser, "user", "", "revoke all sessions of this user")
	cmd.AddCommand(list, revoke)
	return cmd
}
