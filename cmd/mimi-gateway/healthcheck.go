package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
)

func newHealthcheckCommand(g *globalOptions) *cobra.Command {
	var addr string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "healthcheck",
		Short: "Ask the running gateway's /readyz; exit 0 if ready, 1 if not (for container probes)",
		Long: "healthcheck probes GET /readyz on the admin listener of a running gateway: the address from\n" +
			"--addr, else admin.address of the configuration (--config, $MIMI_GATEWAY_CONFIG, the\n" +
			"MIMI_GATEWAY_* variables, the defaults). A wildcard host is probed on loopback.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from := "--addr"
			if addr == "" {
				cfg, err := loadConfig(g)
				if err != nil {
					return err
				}
				addr, from = cfg.Admin.Address, adminAddressSource(g, cfg)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := ops.Probe(ctx, addr); err != nil {
				return fmt.Errorf("%w (admin address %s from %s)", err, addr, from)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "ready")
			return err
		},
	}
	c.Flags().StringVar(&addr, "addr", "", "admin listener host:port (default: admin.address of the configuration)")
	c.Flags().DurationVar(&timeout, "timeout", ops.DefaultProbeTimeout, "give up after this long")
	return c
}

// adminAddressSource says where admin.address came from, for healthcheck's error message: the
// environment, the configuration file, or the defaults (then the gateway may run with a file
// that this command was not given).
func adminAddressSource(g *globalOptions, cfg *config.Config) string {
	const env = config.EnvPrefix + "ADMIN_ADDRESS"
	switch {
	case lookupEnv(g.environ, env) != "":
		return env
	case cfg.Source() != "":
		return cfg.Source()
	}
	return "the defaults; pass --config (or set " + config.EnvConfigFile + ") as for run, or --addr"
}
