package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/event"
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
			mc := matrixConfig(c.Bridges.Matrix, c.Domain, c.DataDirAbs())
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

// matrixConfig maps the bridges.matrix configuration section onto matrix.Config. gatewayDomain is the
// gateway's MIMI domain (the top-level domain key), dataDir its data directory.
func matrixConfig(c config.MatrixBridge, gatewayDomain, dataDir string) matrix.Config {
	out := matrix.Config{
		Mode: matrix.Mode(c.Mode), HomeserverURL: c.HomeserverURL, ServerName: c.ServerName,
		GatewayDomain: event.Domain(gatewayDomain),
		Appservice: matrix.AppserviceConfig{ID: c.Appservice.ID, Listen: c.Appservice.Listen, URL: c.Appservice.URL,
			RegistrationFile: c.Appservice.RegistrationFile, BotLocalpart: c.Appservice.BotLocalpart, GhostPrefix: c.Appservice.GhostPrefix},
		Client: matrix.ClientConfig{UserID: id.UserID(c.Client.UserID), Password: c.Client.Password, AccessToken: c.Client.AccessToken,
			DeviceID: id.DeviceID(c.Client.DeviceID), DisplayName: c.Client.DisplayName, PermissionCheck: &c.Client.PermissionCheck},
		Encryption:   matrix.EncryptionConfig{Default: &c.Encryption.Default, PickleKey: c.Encryption.PickleKey, Require: c.Encryption.Require},
		MaxMediaSize: int64(c.MaxMediaSize),
		DecryptWait:  c.DecryptWait,
		Language:     c.Language,
	}
	if out.ServerName == "" {
		out.ServerName = gatewayDomain
	}
	if out.Appservice.RegistrationFile == "" && dataDir != "" {
		out.Appservice.RegistrationFile = filepath.Join(dataDir, matrix.DefaultRegistrationFile)
	}
	if out.DecryptWait == 0 {
		out.DecryptWait = time.Nanosecond // 0 in the file means "do not wait"; 0 here would mean the default
	}
	return out.WithDefaults()
}
