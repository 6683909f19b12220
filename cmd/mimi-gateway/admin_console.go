package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/console"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
)

func init() {
	registerAdmin(func(g *globalOptions) *cobra.Command { return newDLQCommand(newAdminOptions(g)) })
	registerAdmin(func(g *globalOptions) *cobra.Command { return newPartnersCommand(newAdminOptions(g)) })
	registerAdmin(func(g *globalOptions) *cobra.Command { return newRoomsCommand(newAdminOptions(g)) })
	registerAdmin(func(g *globalOptions) *cobra.Command {
		return newSectionCommand(newAdminOptions(g), "reports", "abuse-reports")
	})
	registerAdmin(func(g *globalOptions) *cobra.Command {
		return newSectionCommand(newAdminOptions(g), "consent", "consent")
	})
	registerAdmin(newPasswdCommand)
}

// adminOptions are the flags of the admin subcommands.
type adminOptions struct {
	g      *globalOptions
	socket string
	json   bool
}

func newAdminOptions(g *globalOptions) *adminOptions { return &adminOptions{g: g} }

// socketFlags adds the flags of the commands that talk to the running gateway.
func (o *adminOptions) socketFlags(c *cobra.Command) *cobra.Command {
	c.PersistentFlags().StringVar(&o.socket, "socket", "", "the gateway's admin socket (default: admin_ui.socket of the configuration)")
	c.PersistentFlags().BoolVar(&o.json, "json", false, "print JSON instead of a table")
	return c
}

// newDLQCommand is `admin dlq`: the dead letters of the running gateway, over its admin socket.
func newDLQCommand(o *adminOptions) *cobra.Command {
	dlq := &cobra.Command{Use: "dlq", Short: "Dead letters: list, show, replay, discard (metadata only, never content)"}
	var after uint64
	var limit int
	list := &cobra.Command{Use: "list", Short: "List dead letters, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var items []bus.DeadLetter
			q := url.Values{"after": {fmt.Sprint(after)}, "limit": {fmt.Sprint(limit)}}
			if err := o.call(cmd.Context(), http.MethodGet, console.APIDeadLetters+"?"+q.Encode(), &items); err != nil {
				return err
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), items)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tREASON\tKIND\tSUBJECT\tDELIVERIES\tERROR")
			for _, d := range items {
				kind := "-"
				if d.Envelope != nil {
					kind = d.Envelope.Kind
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", d.Seq, d.Time.Format(time.RFC3339), d.Reason, kind, d.Subject, d.Deliveries, oneLineClip(d.Error, 80))
			}
			return tw.Flush()
		}}
	list.Flags().Uint64Var(&after, "after", 0, "list dead letters after this sequence number")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many")
	show := &cobra.Command{Use: "show SEQ", Short: "Show one dead letter's metadata", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d bus.DeadLetter
			if err := o.call(cmd.Context(), http.MethodGet, console.APIDeadLetters+"/"+url.PathEscape(args[0]), &d); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), d)
		}}
	action := func(name, short string) *cobra.Command {
		return &cobra.Command{Use: name + " SEQ...", Short: short, Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var errs []error
				for _, seq := range args {
					if err := o.call(cmd.Context(), http.MethodPost, console.APIDeadLetters+"/"+url.PathEscape(seq)+"/"+name, nil); err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", seq, err))
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", seq, map[string]string{"replay": "replayed", "discard": "discarded"}[name])
				}
				return errors.Join(errs...)
			}}
	}
	dlq.AddCommand(list, show,
		action("replay", "Publish dead letters again on their original subjects, then remove them"),
		action("discard", "Remove dead letters without publishing them"))
	return o.socketFlags(dlq)
}

// newPartnersCommand is `admin partners check`.
func newPartnersCommand(o *adminOptions) *cobra.Command {
	partners := &cobra.Command{Use: "partners", Short: "Partner providers"}
	partners.AddCommand(&cobra.Command{Use: "check [DOMAIN]", Short: "Fetch each partner's directory over mutual TLS now", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := console.APIPartnersCheck
			if len(args) == 1 {
				p += "?domain=" + url.QueryEscape(args[0])
			}
			var res []protocol.CheckResult
			if err := o.call(cmd.Context(), http.MethodPost, p, &res); err != nil {
				return err
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			failed := 0
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTNER\tRESULT\tSTATUS\tLATENCY\tCERT EXPIRES\tERROR")
			for _, r := range res {
				result, exp := "ok", "-"
				if !r.OK() {
					result = "FAILED"
					failed++
				}
				if len(r.Chain) > 0 {
					exp = r.Chain[0].NotAfter.Format("2006-01-02")
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Domain, result, r.Status, r.Latency.Round(time.Millisecond), exp, oneLineClip(r.Error, 100))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if failed > 0 {
				return &exitCodeError{code: exitError, err: fmt.Errorf("%d of %d partners failed the check", failed, len(res))}
			}
			return nil
		}})
	return o.socketFlags(partners)
}

// newRoomsCommand is `admin rooms`.
func newRoomsCommand(o *adminOptions) *cobra.Command {
	rooms := &cobra.Command{Use: "rooms", Short: "List rooms (hosted and followed) and the outbox backlog", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Rooms   []provider.RoomSummary `json:"rooms"`
				Backlog []protocol.Backlog     `json:"backlog"`
			}
			if err := o.call(cmd.Context(), http.MethodGet, console.APIRooms, &res); err != nil {
				return err
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "ROOM\tHUB\tROLE\tEPOCH\tMEMBERS\tLOCAL CLIENTS")
			for _, r := range res.Rooms {
				role := "followed"
				if r.Hosted {
					role = "hosted"
				}
				var ms []string
				for d, n := range r.Members {
					ms = append(ms, fmt.Sprintf("%s:%d", d, n))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\n", r.Room, r.Hub, role, r.Epoch, strings.Join(ms, ","), r.LocalClients)
			}
			if len(res.Backlog) > 0 {
				fmt.Fprintln(tw, "\nFOLLOWER\tROOM\tPENDING\tOLDEST\tATTEMPTS\tLAST STATUS")
				for _, b := range res.Backlog {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", b.Follower, b.Room, b.Pending, b.Oldest.Format(time.RFC3339), b.Attempts, b.LastStatus)
				}
			}
			return tw.Flush()
		}}
	return o.socketFlags(rooms)
}

// newPasswdCommand is `admin passwd`: the console's local account, written to the store.
func newPasswdCommand(g *globalOptions) *cobra.Command {
	var user, role string
	passwd := &cobra.Command{Use: "passwd", Short: "Set the admin console's local (break-glass) account and password", Args: cobra.NoArgs,
		Long: "passwd stores an argon2id hash of a new password for the console's local account in the\n" +
			"gateway's store, and ends that account's sessions. The password is read from the terminal\n" +
			"(twice, without echo) or, when standard input is not a terminal, from its first line.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := console.CheckPassword(pw); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			st, err := openAdminStore(ctx, cmd, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := console.SetLocalAccount(ctx, st, user, pw, console.Role(role), time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "local account %q set (role %s)\n", user, role)
			return nil
		}}
	passwd.Flags().StringVar(&user, "user", "admin", "account name")
	passwd.Flags().StringVar(&role, "role", string(console.RoleOperator), "role: operator or viewer")
	return passwd
}

// readPassword reads a password from a terminal (twice, no echo) or the first line of in.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "New password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		fmt.Fprint(prompt, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(in, console.MaxPasswordLength+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// call sends one request to the gateway's admin socket and decodes the JSON answer into out.
func (o *adminOptions) call(ctx context.Context, method, path string, out any) error {
	sock := o.socket
	if sock == "" {
		cfg, err := o.g.loadConfig()
		if err != nil {
			return err
		}
		if sock = cfg.SocketPath(); sock == "" {
			return errors.New("admin_ui.socket is off in the configuration")
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, method, "http://gateway"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("is the gateway running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var ae console.APIError
		if json.Unmarshal(body, &ae) == nil && ae.Error != "" {
			return errors.New(ae.Error)
		}
		return fmt.Errorf("the gateway answered HTTP %d", resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func oneLineClip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
