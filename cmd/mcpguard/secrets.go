package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mcpguard/mcpguard/internal/app"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/secrets"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// readValue reads a secret's value: without echo from a terminal, else all
// of stdin (one trailing newline removed).
func readValue(c *cobra.Command, prompt string) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(c.ErrOrStderr(), prompt)
		v, err := term.ReadPassword(fd)
		fmt.Fprintln(c.ErrOrStderr())
		return v, err
	}
	v, err := io.ReadAll(io.LimitReader(bufio.NewReader(c.InOrStdin()), secrets.MaxValue+1))
	if err != nil {
		return nil, err
	}
	if len(v) > secrets.MaxValue {
		return nil, fmt.Errorf("the value is larger than %d bytes", secrets.MaxValue)
	}
	v = []byte(strings.TrimSuffix(strings.TrimSuffix(string(v), "\n"), "\r"))
	if len(v) == 0 {
		return nil, errors.New("empty value: pipe the secret on stdin")
	}
	return v, nil
}

func secretsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage the encrypted secret store (master key from MCPGUARD_MASTER_KEY or secrets.master_key)",
	}
	set := &cobra.Command{
		Use:   "set NAME",
		Short: "Store a secret read from stdin (without echo on a terminal); refer to it as secret:NAME",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			v, err := readValue(c, "Value: ")
			if err != nil {
				return err
			}
			return app.SecretsSet(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv, args[0], v)
		}),
	}
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a secret's value to stdout",
		Args:  cobra.ExactArgs(1),
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, args []string) error {
			return app.SecretsGet(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv, args[0])
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List secrets: names and master key ids, never values",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			return app.SecretsList(c.Context(), c.OutOrStdout(), cfg.StoreLocation())
		}),
	}
	rotate := &cobra.Command{
		Use:   "rotate-master",
		Short: "Re-wrap every secret with a new master key read from MCPGUARD_NEW_MASTER_KEY or stdin; nothing changes if any secret cannot be opened",
		Args:  cobra.NoArgs,
		RunE: g.withConfig(func(c *cobra.Command, cfg *config.Config, _ []string) error {
			var key []byte
			var err error
			if v, ok := os.LookupEnv("MCPGUARD_NEW_MASTER_KEY"); ok && v != "" {
				key = []byte(v)
			} else if key, err = readValue(c, "New master key: "); err != nil {
				return err
			}
			return app.SecretsRotateMaster(c.Context(), c.OutOrStdout(), cfg, os.LookupEnv, key)
		}),
	}
	cmd.AddCommand(set, get, list, rotate)
	return cmd
}
