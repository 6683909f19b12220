package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/config"
)

func newConfigCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Print or check the configuration",
	}
	c.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "Print the commented example configuration (every key with its default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Example())
			return err
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a configuration file and the MIMI_GATEWAY_* variables; list every problem",
		Long: "validate loads FILE (default: --config, else $" + config.EnvConfigFile + ") as run would, with the\n" +
			"MIMI_GATEWAY_* environment variables, and prints every problem as file:line:column: key: message.\n" +
			"It exits 0 when the configuration is valid, 2 when it is not.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := g.configOptions()
			if len(args) == 1 {
				opts.Path = args[0]
			}
			if opts.Path == "" {
				return errors.New("config validate: no file given (an argument, --config or $" + config.EnvConfigFile + ")")
			}
			cfg, err := config.Load(opts)
			if err != nil {
				return &configError{err}
			}
			for _, w := range cfg.Warnings() {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", opts.Path, w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", opts.Path)
			return nil
		},
	})
	return c
}
