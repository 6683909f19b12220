// Command mimi-gateway runs the gateway that makes an organisation's Matrix and XMPP users part of
// MIMI, and the tools that go with it.
//
//	mimi-gateway run [--config FILE]        run the gateway (SIGHUP reloads, SIGTERM stops)
//	mimi-gateway config example             print the commented example configuration
//	mimi-gateway config validate [FILE]     check a configuration, listing every problem
//	mimi-gateway inspect content FILE|-     decode a MIMI content document (CBOR)
//	mimi-gateway inspect mls FILE|-         decode an MLS message (raw or hex)
//	mimi-gateway healthcheck                probe /readyz of the running gateway (for containers)
//	mimi-gateway version                    print version, commit and Go version
//	mimi-gateway admin store-key generate   print a new store encryption key
//	mimi-gateway admin store-key rotate     re-encrypt the store with the keyring's first key
//	mimi-gateway admin passwd               set the admin console's local account (argon2id hash in the store)
//	mimi-gateway admin dlq list|show|replay|discard   dead letters of the running gateway (metadata only)
//	mimi-gateway admin partners check [DOMAIN]        fetch partners' directories over mutual TLS now
//	mimi-gateway admin rooms                rooms, members by provider, outbox backlog
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/config"
)

// Exit codes.
const (
	exitOK = 0
	// exitError is any failure at run time.
	exitError = 1
	// exitConfig means the configuration is invalid (config validate, run).
	exitConfig = 2
)

// commands are the subcommands besides the built-in ones; files of this package add theirs with
// register in an init function (see docs/architecture.md, "Adding a command").
var commands []func() *cobra.Command

// register adds a subcommand constructor. Call it from an init function.
func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
}

// globalOptions are the flags every subcommand shares.
type globalOptions struct {
	configPath string
	environ    []string
	stdin      io.Reader
}

// configOptions returns how to load the configuration: --config, else MIMI_GATEWAY_CONFIG.
func (g *globalOptions) configOptions() config.Options {
	path := g.configPath
	if path == "" {
		path = lookupEnv(g.environ, config.EnvConfigFile)
	}
	return config.Options{Path: path, Environ: g.environ}
}

// execute runs the CLI with the given arguments and streams and returns the exit code.
func execute(args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	g := &globalOptions{environ: environ, stdin: stdin}
	root := newRootCommand(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ce *configError
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, ce.Error())
		return exitConfig
	}
	fmt.Fprintln(stderr, "mimi-gateway:", err)
	var ee *exitCodeError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitError
}

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "mimi-gateway",
		Short: "A MIMI provider for an organisation's Matrix and XMPP users",
		Long: "mimi-gateway makes an organisation a MIMI provider (MLS end-to-end encryption, the MIMI\n" +
			"content format and server-to-server protocol) for its existing Matrix and XMPP users.\n\n" +
			"Without a configuration file it runs on built-in defaults: embedded NATS and SQLite in ./data.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "",
		"configuration file (default: $"+config.EnvConfigFile+", else built-in defaults only)")
	root.AddCommand(newRunCommand(g), newConfigCommand(g), newInspectCommand(g), newVersionCommand(), newHealthcheckCommand(g), newAdminCommand(g))
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

// configError is an invalid configuration; execute prints it without a prefix (each line is
// file:line:col: path: message) and exits with exitConfig.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// exitCodeError carries a specific exit code.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func lookupEnv(environ []string, name string) string {
	prefix := name + "="
	val := ""
	for _, kv := range environ {
		if len(kv) >= len(prefix) && kv[:len(prefix)] == prefix {
			val = kv[len(prefix):] // the last one wins, as with the shell
		}
	}
	return val
}
