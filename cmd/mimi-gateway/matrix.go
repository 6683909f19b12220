package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/config"
)

func init() { register(newMatrixCommand) }

// newMatrixCommand is `mimi-gateway matrix registration`: it writes the appservice registration
// file the homeserver needs (keeping the tokens of an existing file).
func newMatrixCommand() *cobra.Command {
	root := &cobra.Command{Use: "matrix", Short: "Matrix adapter tools"}
	var out string
	reg := &cobra.Command{
		Use:   "registration",
		Short: "Write the appservice registration file for the homeserver (tokens kept on re-run)",
		Long: "Writes the appservice registration (as_token, hs_token, ghost namespace) to " +
			"bridges.matrix.appservice.registration_file (default <data_dir>/" + matrix.DefaultRegistrationFile + ") " +
			"or --output. Give the same file to the homeserver (Synapse: app_service_config_files). " +
			"Existing tokens are kept, so the homeserver's copy stays valid.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := cmd.Flag("config").Value.String()
			if path == "" {
				path = os.Getenv(config.EnvConfigFile)
			}
			c, err := config.Load(config.Options{Path: path, Environ: os.Environ()})
			if err != nil {
				return &configError{err}
			}
			mc := c.MatrixConfig()
			if out != "" {
				mc.Appservice.RegistrationFile = out
			}
			if mc.Appservice.RegistrationFile == "" {
				return errors.New("matrix registration: no output file (set --output or bridges.matrix.appservice.registration_file)")
			}
			r, err := matrix.WriteRegistration(mc, mc.Appservice.RegistrationFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (id %s, url %s, bot @%s:%s)\n", mc.Appservice.RegistrationFile, r.ID, r.URL, r.SenderLocalpart, mc.ServerName)
			return nil
		},
	}
	reg.Flags().StringVarP(&out, "output", "o", "", "registration file to write (default: from the configuration)")
	root.AddCommand(reg)
	return root
}
