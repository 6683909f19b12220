package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// maxInspectInput bounds what inspect reads.
const maxInspectInput = 16 << 20

func newInspectCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "inspect",
		Short: "Decode and print MIMI wire data for debugging",
	}
	var sender, room string
	ic := &cobra.Command{
		Use:   "content FILE|-",
		Short: "Print a MIMI content document (CBOR) with its message ID",
		Long: "inspect content decodes a MIMI content document (draft-ietf-mimi-content, CBOR) from FILE, or\n" +
			"standard input for -, and prints every field, the parts tree and the message ID. The sender\n" +
			"and room URIs for the message ID come from extensions 1 and 2 unless --sender and --room\n" +
			"override them. It also accepts message status reports and MessageDerivedValues.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(g, args[0])
			if err != nil {
				return err
			}
			return content.Inspect(cmd.OutOrStdout(), data, sender, room)
		},
	}
	ic.Flags().StringVar(&sender, "sender", "", "sender URI (mimi://domain/u/user), overriding extension 1")
	ic.Flags().StringVar(&room, "room", "", "room URI (mimi://domain/r/room), overriding extension 2")
	c.AddCommand(ic, newInspectMLSCommand(g))
	return c
}

// readInput reads FILE, or standard input for "-", up to maxInspectInput bytes.
func readInput(g *globalOptions, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = g.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInspectInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxInspectInput {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxInspectInput)
	}
	return data, nil
}

func newInspectMLSCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "mls FILE|-",
		Short: "Print an MLS message (KeyPackage, Welcome, GroupInfo, Public/PrivateMessage)",
		Long: "inspect mls decodes an MLSMessage (RFC 9420) from FILE, or standard input for -, raw or as\n" +
			"hex text, and prints its public fields. Input that is not an MLSMessage is tried as a bare\n" +
			"KeyPackage, GroupInfo, Welcome and ratchet tree. It never needs or prints a secret.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(g, args[0])
			if err != nil {
				return err
			}
			return mls.Inspect(cmd.OutOrStdout(), data)
		},
	}
}
