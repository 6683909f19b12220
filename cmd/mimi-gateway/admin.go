package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// adminCommands are the subcommands of `mimi-gateway admin`; files of this package add theirs
// with registerAdmin in an init function.
var adminCommands []func(g *globalOptions) *cobra.Command

// registerAdmin adds a subcommand constructor to `mimi-gateway admin`. Call it from an init
// function.
func registerAdmin(newCmd func(g *globalOptions) *cobra.Command) {
	adminCommands = append(adminCommands, newCmd)
}

// newAdminCommand is `mimi-gateway admin`: tools that work on the gateway's data, next to a
// running gateway or without one, with the same configuration as `run`.
func newAdminCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "admin",
		Short: "Administration: encryption keys, personal data, ...",
		Long: "Tools that work on the gateway's data with the same configuration as `run` (--config or\n" +
			"$" + config.EnvConfigFile + "). They may run while the gateway runs.",
	}
	for _, newCmd := range adminCommands {
		c.AddCommand(newCmd(g))
	}
	return c
}

// loadConfig loads the configuration the way `run` does; an invalid one is a configError.
func (g *globalOptions) loadConfig() (*config.Config, error) {
	c, err := config.Load(g.configOptions())
	if err != nil {
		return nil, &configError{err}
	}
	return c, nil
}

// openAdminStore opens the configured store (with its keyring) for an admin command. Logs go to
// the command's error stream.
func openAdminStore(ctx context.Context, cmd *cobra.Command, c *config.Config, opts ...store.Option) (*store.Store, error) {
	log, _, err := ops.NewLogger(ops.LogConfig{Format: "text", Level: "warn"}, cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, storeConfig(c), append([]store.Option{store.WithLogger(log)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("open the store: %w", err)
	}
	return st, nil
}
