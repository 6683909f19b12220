package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

func init() { registerAdmin(newStoreKeyCommand) }

// newStoreKeyCommand is `mimi-gateway admin store-key generate|rotate`.
func newStoreKeyCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "store-key",
		Short: "The store's encryption keys: make one, rotate to a new one",
		Long: "The store seals private keys, MLS states and message content with the first key of its\n" +
			"keyring (store.encryption.key or key_file; by default <data_dir>/store.key).\n\n" +
			"Rotation: put a new key (from `generate`) in front of the old ones, restart every gateway\n" +
			"replica (new values are sealed with the new key from then on), run `rotate`, and once it\n" +
			"reports the old keys retired, remove them from the keyring.",
	}
	c.AddCommand(&cobra.Command{
		Use:   "generate",
		Short: "Print a new random key (a keyring line)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := store.GenerateKey()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), k)
			return err
		},
	})
	var batch int
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Re-encrypt every sealed value with the keyring's first key, in batches, while the gateway runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := openAdminStore(ctx, cmd, c)
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "sealing with key %s\n", st.Keyring().Primary())
			res, err := st.Reseal(ctx, batch, nil)
			fmt.Fprintf(out, "columns %d, values examined %d, re-encrypted %d, changed meanwhile %d, left under old keys %d\n",
				res.Columns, res.Examined, res.Resealed, res.Changed, res.Remaining)
			if err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
			if res.Remaining > 0 {
				return fmt.Errorf("rotate: %d values are still sealed with an old key: a gateway replica still seals with it (restart it with the new key first), then run rotate again", res.Remaining)
			}
			ids := make([]string, len(res.Retired))
			for i, id := range res.Retired {
				ids[i] = id.String()
			}
			if len(ids) > 0 {
				fmt.Fprintf(out, "retired keys %s: remove them from the keyring\n", strings.Join(ids, ", "))
			} else {
				fmt.Fprintln(out, "no old key in use")
			}
			return nil
		},
	}
	rotate.Flags().IntVar(&batch, "batch", store.DefaultResealBatch, "values re-encrypted per transaction")
	c.AddCommand(rotate)
	return c
}
