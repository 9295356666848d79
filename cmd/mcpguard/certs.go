package main

import (
	"time"

	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/spf13/cobra"
)

func certsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Development certificates for HTTPS and mutual TLS",
	}
	var o app.CertsOptions
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a development CA, a server certificate for localhost and client certificates for admin, developer, viewer",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return app.CertsInit(c.OutOrStdout(), o)
		},
	}
	initCmd.Flags().StringVar(&o.Dir, "dir", "./mcpguard-certs", "directory for the PEM files (created 0700; files 0600)")
	initCmd.Flags().StringSliceVar(&o.Hosts, "host", nil, "server certificate name or IP (repeatable; default localhost, 127.0.0.1, ::1)")
	initCmd.Flags().DurationVar(&o.Validity, "validity", 90*24*time.Hour, "certificate lifetime")
	initCmd.Flags().BoolVar(&o.Force, "force", false, "replace existing files")
	cmd.AddCommand(initCmd)
	return cmd
}
