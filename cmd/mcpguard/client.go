package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/mcpguard/mcpguard/mcpclient"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

// clientFlags are the flags `login` and `connect` share.
type clientFlags struct {
	tokenDir    string
	clientID    string
	metadataURL string
	scopes      []string
	port        int
	noBrowser   bool
}

func (f *clientFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.tokenDir, "token-dir", "", "where logins are stored (default: the user config dir's mcpguard/tokens)")
	c.Flags().StringVar(&f.clientID, "client-id", "", "a client ID registered in advance with the authorization server (secret, if any, from MCPGUARD_CLIENT_SECRET)")
	c.Flags().StringVar(&f.metadataURL, "client-metadata-url", "", "https URL of a Client ID Metadata Document to use as the client ID")
	c.Flags().StringSliceVar(&f.scopes, "scope", nil, "scope to request in addition to those the server asks for (repeatable)")
	c.Flags().IntVar(&f.port, "redirect-port", 0, "fixed port for the loopback redirect (default: any free port)")
	c.Flags().BoolVar(&f.noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser")
}

// args returns the flags to repeat in a `connect` command line.
func (f *clientFlags) args() []string {
	var a []string
	if f.tokenDir != "" {
		a = append(a, "--token-dir", f.tokenDir)
	}
	if f.clientID != "" {
		a = append(a, "--client-id", f.clientID)
	}
	if f.metadataURL != "" {
		a = append(a, "--client-metadata-url", f.metadataURL)
	}
	if f.port != 0 {
		a = append(a, "--redirect-port", strconv.Itoa(f.port))
	}
	return a
}

// handler builds the OAuth handler from the flags and MCPGUARD_CLIENT_SECRET
// and MCPGUARD_TOKEN_KEY (base64, ≥ 32 bytes: seal the stored tokens).
func (f *clientFlags) handler(c *cobra.Command, serverURL string, interactive bool) (*mcpclient.Handler, error) {
	var key []byte
	if v := os.Getenv("MCPGUARD_TOKEN_KEY"); v != "" {
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, errors.New("MCPGUARD_TOKEN_KEY must be base64 (e.g. `openssl rand -base64 32`)")
		}
		key = k
	}
	store, err := mcpclient.OpenStore(f.tokenDir, key)
	if err != nil {
		return nil, err
	}
	cfg := mcpclient.Config{
		ServerURL: serverURL, Store: store, Interactive: interactive,
		ClientID: f.clientID, ClientSecret: os.Getenv("MCPGUARD_CLIENT_SECRET"), ClientMetadataURL: f.metadataURL,
		Scopes: f.scopes, RedirectPort: f.port, Log: c.ErrOrStderr(),
	}
	if f.noBrowser {
		cfg.OpenBrowser = mcpclient.NoBrowser
	}
	return mcpclient.NewHandler(cfg)
}

func loginCmd() *cobra.Command {
	f := &clientFlags{}
	var force bool
	cmd := &cobra.Command{
		Use:   "login URL",
		Short: "Sign in to a remote MCP server with OAuth and store the tokens for `mcpguard connect`",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			h, err := f.handler(c, args[0], true)
			if err != nil {
				return err
			}
			if err := h.Login(c.Context(), force); err != nil {
				if !errors.Is(err, mcpclient.ErrNoAuthorization) {
					return err
				}
				fmt.Fprintf(c.ErrOrStderr(), "mcpguard: %s does not ask for authorization; connect needs no login\n", args[0])
			}
			exe, err := os.Executable()
			if err != nil {
				exe = "mcpguard"
			}
			fmt.Fprintf(c.OutOrStdout(), "\nTo use it from a stdio MCP client:\n\n%s", mcpclient.ConfigSnippets(exe, args[0], f.args()))
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "sign in again even if the stored login still works")
	return cmd
}

func connectCmd() *cobra.Command {
	f := &clientFlags{}
	var headers, ignore []string
	var login bool
	cmd := &cobra.Command{
		Use:   "connect URL",
		Short: "Serve MCP on stdin/stdout, relaying everything to a remote MCP server with the stored login",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			h, err := f.handler(c, args[0], login)
			if err != nil {
				return err
			}
			hdr, err := mcpclient.ParseHeaders(headers)
			if err != nil {
				return err
			}
			return mcpclient.Bridge(c.Context(), &mcp.StdioTransport{}, args[0], h, mcpclient.BridgeOptions{Header: hdr, IgnoreTools: ignore, Log: c.ErrOrStderr()})
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&headers, "header", nil, "extra HTTP header Name=Value for every request (repeatable)")
	cmd.Flags().StringArrayVar(&ignore, "ignore-tool", nil, "hide tools whose names match this glob (repeatable)")
	cmd.Flags().BoolVar(&login, "login", false, "run the browser sign-in when there is no usable login (default: fail with a message saying to run mcpguard login)")
	return cmd
}
