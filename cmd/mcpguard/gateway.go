package main

import (
	"os"
	"time"

	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/spf13/cobra"
)

func toolsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tools", Short: "Manage upstream tool definitions (gateway mode)"}
	var names []string
	pin := &cobra.Command{
		Use:   "pin",
		Short: "Pin the current definition of every upstream tool, after reviewing a change mcpguard blocked",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.ToolsPin(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv, names)
		}),
	}
	pin.Flags().StringArrayVar(&names, "upstream", nil, "pin only this upstream's tools (repeatable)")
	cmd.AddCommand(pin)
	return cmd
}

func upstreamsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "upstreams", Short: "Inspect the upstream MCP servers mcpguard fronts (gateway mode)"}
	var format string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each upstream's state, processes, restarts, last error and tool count, as the running server last reported them",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.UpstreamsStatus(c.Context(), c.OutOrStdout(), cfg.StoreLocation(), format, time.Now())
		}),
	}
	status.Flags().StringVar(&format, "format", "table", "table or json")
	cmd.AddCommand(status)
	return cmd
}
