package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// roleNames lists the roles the configuration defines.
func roleNames(cfg *config.Config) []string {
	roles := []string{}
	for r := range cfg.Roles {
		roles = append(roles, r)
	}
	return roles
}

// readPassword reads a new password: without echo, twice, from a terminal;
// otherwise one line from stdin (for scripts: --password-stdin).
func readPassword(c *cobra.Command, fromStdin bool) (string, error) {
	fd := int(os.Stdin.Fd())
	if !fromStdin && term.IsTerminal(fd) {
		fmt.Fprint(c.ErrOrStderr(), "New password: ")
		a, err := term.ReadPassword(fd)
		fmt.Fprintln(c.ErrOrStderr())
		if err != nil {
			return "", err
		}
		fmt.Fprint(c.ErrOrStderr(), "Repeat it: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(c.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords do not match")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(c.InOrStdin(), 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func usersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage the people who sign in to the built-in authorization server"}
	var roles []string
	var pwStdin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a user (the password is read without echo, or from stdin with --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			known, dataDir := roleNames(cfg), cfg.StoreLocation()
			pw, err := readPassword(c, pwStdin)
			if err != nil {
				return err
			}
			return app.UsersAdd(c.Context(), c.OutOrStdout(), app.UserOptions{DataDir: dataDir, Name: args[0], Roles: roles, Password: pw, KnownRoles: known})
		}),
	}
	add.Flags().StringSliceVar(&roles, "role", nil, "role the user holds (repeatable)")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	add.MarkFlagRequired("role")

	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password; their refresh tokens are revoked",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			dataDir := cfg.StoreLocation()
			pw, err := readPassword(c, pwStdin)
			if err != nil {
				return err
			}
			return app.UsersPasswd(c.Context(), c.OutOrStdout(), app.UserOptions{DataDir: dataDir, Name: args[0], Password: pw})
		}),
	}
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")

	var setRoles []string
	roleCmd := &cobra.Command{
		Use:   "roles NAME",
		Short: "Replace a user's roles; their refresh tokens are revoked",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			known, dataDir := roleNames(cfg), cfg.StoreLocation()
			return app.UsersSetRoles(c.Context(), c.OutOrStdout(), app.UserOptions{DataDir: dataDir, Name: args[0], Roles: setRoles, KnownRoles: known})
		}),
	}
	roleCmd.Flags().StringSliceVar(&setRoles, "role", nil, "role the user holds (repeatable)")
	roleCmd.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			dataDir := cfg.StoreLocation()
			return app.UsersList(c.Context(), c.OutOrStdout(), dataDir, time.Now())
		}),
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Delete a user; their refresh tokens are revoked",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			dataDir := cfg.StoreLocation()
			return app.UsersRemove(c.Context(), c.OutOrStdout(), dataDir, args[0])
		}),
	}
	mfa := &cobra.Command{Use: "mfa", Short: "Manage a user's TOTP multi-factor authentication"}
	var issuer string
	enroll := &cobra.Command{
		Use:   "enroll NAME",
		Short: "Enrol TOTP: prints the otpauth URI, a QR code for the terminal and single-use backup codes",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			return app.UsersMFAEnroll(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv, args[0], issuer)
		}),
	}
	enroll.Flags().StringVar(&issuer, "issuer", "mcpguard", "issuer name shown by the authenticator app")
	disable := &cobra.Command{
		Use:   "disable NAME",
		Short: "Remove a user's MFA enrolment",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			dataDir := cfg.StoreLocation()
			return app.UsersMFADisable(c.Context(), c.OutOrStdout(), dataDir, args[0])
		}),
	}
	mfa.AddCommand(enroll, disable)
	cmd.AddCommand(add, passwd, roleCmd, list, remove, mfa)
	return cmd
}

func clientsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "clients", Short: "Manage OAuth clients of the built-in authorization server"}
	var o app.ClientOptions
	add := &cobra.Command{
		Use:   "add",
		Short: "Pre-register a client; a confidential client's secret is printed once",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			known, dataDir := roleNames(cfg), cfg.StoreLocation()
			o.DataDir, o.KnownRoles = dataDir, known
			return app.ClientsAdd(c.Context(), c.OutOrStdout(), o)
		}),
	}
	add.Flags().StringVar(&o.Name, "name", "", "name shown on the consent page (required)")
	add.Flags().StringSliceVar(&o.RedirectURIs, "redirect-uri", nil, "redirect URI, https or http on loopback (repeatable)")
	add.Flags().BoolVar(&o.Confidential, "confidential", false, "a confidential client with a secret (client_secret_basic/post), allowed client_credentials")
	add.Flags().StringSliceVar(&o.Roles, "role", nil, "role of the client itself in client_credentials (repeatable)")
	add.Flags().StringSliceVar(&o.Scopes, "scope", nil, "scope the client may ask for (repeatable; default any)")
	add.MarkFlagRequired("name")
	list := &cobra.Command{
		Use:   "list",
		Short: "List registered clients",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			dataDir := cfg.StoreLocation()
			return app.ClientsList(c.Context(), c.OutOrStdout(), dataDir)
		}),
	}
	remove := &cobra.Command{
		Use:   "remove CLIENT_ID",
		Short: "Delete a registered client",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			dataDir := cfg.StoreLocation()
			return app.ClientsRemove(c.Context(), c.OutOrStdout(), dataDir, args[0])
		}),
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}
