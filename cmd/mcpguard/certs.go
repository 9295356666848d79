package main

import (
	"time"

	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// tlsFlags are serve's HTTPS and mutual-TLS flags; each overrides its
// server.tls setting when given.
type tlsFlags struct{ cert, key, clientCA, clientAuth string }

func (t *tlsFlags) register(f *pflag.FlagSet) {
	f.StringVar(&t.cert, "tls-cert", "", "serve HTTPS with this PEM certificate (overrides server.tls.cert)")
	f.StringVar(&t.key, "tls-key", "", "PEM private key of --tls-cert (overrides server.tls.key)")
	f.StringVar(&t.clientCA, "client-ca", "", "PEM CAs of client certificates: enables mutual TLS (overrides server.tls.client_ca)")
	f.StringVar(&t.clientAuth, "client-auth", "", "mtls, mtls+token or either (overrides server.tls.client_auth; default either)")
}

func (t *tlsFlags) apply(c *config.TLSConfig) {
	if t.cert != "" {
		c.Cert = t.cert
	}
	if t.key != "" {
		c.Key = t.key
	}
	if t.clientCA != "" {
		c.ClientCA = t.clientCA
	}
	if t.clientAuth != "" {
		c.ClientAuth = t.clientAuth
	}
}
