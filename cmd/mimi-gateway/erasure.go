package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/erasure"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

func init() { registerAdmin(newEraseUserCommand) }

// erasurePoll is how often the running gateway looks for erasure requests.
const erasurePoll = 5 * time.Second

// nativeIDs are a local user's addresses on the organisation's networks.
type nativeIDs struct {
	matrix id.UserID
	xmpp   string
}

func nativeIDsOf(c *config.Config, u event.UserURI) nativeIDs {
	mx := c.MatrixConfig().ServerName
	xd := c.XMPPConfig().Domain
	return nativeIDs{matrix: id.NewUserID(u.Local(), mx), xmpp: u.Local() + "@" + xd}
}

// providerLeaver makes users leave through the running MIMI endpoint; without one, a user who
// still has MLS clients waits for it.
type providerLeaver struct {
	hooks *runtimeHooks
	st    *store.Store
}

func (l providerLeaver) LeaveAll(ctx context.Context, u event.UserURI) (int, error) {
	if p := l.hooks.provider.Load(); p != nil {
		return p.LeaveAll(ctx, u)
	}
	if v, err := l.st.SchemaVersion(ctx, "provider"); err != nil || v == 0 {
		return 0, err
	}
	var n int
	err := l.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_clients WHERE user_uri = ?`, string(u)).Scan(&n)
	return n, err
}

// startErasure runs the erasure worker: it performs the requests `admin erase-user` queues.
func startErasure(ctx context.Context, d adapterDeps) (ops.StopFunc, error) {
	if err := d.Store.Migrate(ctx, erasure.Schema); err != nil {
		return nil, err
	}
	hooks := d.Hooks
	if hooks == nil {
		hooks = &runtimeHooks{}
	}
	w := newErasureWorker(d.Config, d.Store, d.Bus, d.Assets, providerLeaver{hooks: hooks, st: d.Store}, d.Log)
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(rctx, erasurePoll) }()
	return func(context.Context) error { cancel(); <-done; return nil }, nil
}

// deadLetterEraser is what erasure needs of the bus.
type deadLetterEraser interface {
	EraseDeadLetters(ctx context.Context, match func(env *event.Envelope) bool) (int64, error)
}

// newErasureWorker registers every component's eraser.
func newErasureWorker(c *config.Config, st *store.Store, b bus.Bus, as interface {
	EraseOwner(ctx context.Context, u event.UserURI) (int64, error)
}, leaver erasure.Leaver, log *slog.Logger) *erasure.Worker {
	w := erasure.NewWorker(st, leaver, log.With("component", "erasure"))
	ifMigrated := func(component string, f erasure.EraserFunc) erasure.Eraser {
		return erasure.EraserFunc(func(ctx context.Context, u event.UserURI) (int64, error) {
			if v, err := st.SchemaVersion(ctx, component); err != nil || v == 0 {
				return 0, err
			}
			return f(ctx, u)
		})
	}
	w.Register("provider", ifMigrated("provider", func(ctx context.Context, u event.UserURI) (int64, error) {
		return provider.EraseUser(ctx, st, u)
	}))
	w.Register("idmap", ifMigrated(idmap.Component, func(ctx context.Context, u event.UserURI) (int64, error) {
		n := nativeIDsOf(c, u)
		return idmap.EraseUser(ctx, st, u, event.NativeUserID(n.matrix), event.NativeUserID(n.xmpp))
	}))
	w.Register("xmpp", ifMigrated(xmpp.Component, func(ctx context.Context, u event.UserURI) (int64, error) {
		return xmpp.EraseUser(ctx, st, u, nativeIDsOf(c, u).xmpp)
	}))
	w.Register("matrix", ifMigrated(matrix.Component, func(ctx context.Context, u event.UserURI) (int64, error) {
		return matrix.EraseUser(ctx, st, u, nativeIDsOf(c, u).matrix)
	}))
	w.Register("consent", ifMigrated("consent", func(ctx context.Context, u event.UserURI) (int64, error) {
		return consent.EraseUser(ctx, st, u)
	}))
	w.Register("abuse", ifMigrated(abuse.Component, func(ctx context.Context, u event.UserURI) (int64, error) {
		return abuse.EraseUser(ctx, st, u)
	}))
	if as != nil {
		w.Register("assets", erasure.EraserFunc(as.EraseOwner))
	}
	if dl, ok := b.(deadLetterEraser); ok {
		w.Register("dead_letters", erasure.EraserFunc(func(ctx context.Context, u event.UserURI) (int64, error) {
			return dl.EraseDeadLetters(ctx, func(env *event.Envelope) bool { return env != nil && namesUser(env, u) })
		}))
	}
	return w
}

// namesUser reports whether an envelope is from u or about u.
func namesUser(env *event.Envelope, u event.UserURI) bool {
	return env.Sender == u || (env.Membership != nil && env.Membership.Target == u)
}

// configAndUser loads the configuration and parses a user URI argument.
func (g *globalOptions) configAndUser(arg string) (*config.Config, event.UserURI, error) {
	c, err := g.loadConfig()
	if err != nil {
		return nil, "", err
	}
	u, err := event.ParseUserURI(arg)
	if err != nil {
		return nil, "", err
	}
	return c, u, nil
}

// newEraseUserCommand is `mimi-gateway admin erase-user URI`.
func newEraseUserCommand(g *globalOptions) *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use:   "erase-user URI",
		Short: "Erase a local user's data: leave every MIMI room, then delete every record naming the user",
		Long: "Queues the erasure of a local user (mimi://<domain>/u/<name>) in the store and waits until the\n" +
			"running gateway has done it: the user leaves every MIMI room by SelfRemove (the rooms continue\n" +
			"for the others), then every row, KeyPackage, attachment, history entry and dead letter naming\n" +
			"the user is deleted. The request survives restarts of the gateway.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, u, err := g.configAndUser(args[0])
			if err != nil {
				return err
			}
			if string(u.Domain()) != c.Domain {
				return fmt.Errorf("%s is not a user of this gateway (%s)", u, c.Domain)
			}
			ctx := cmd.Context()
			st, err := openAdminStore(ctx, cmd, c, store.WithMigrations(erasure.Schema))
			if err != nil {
				return err
			}
			defer st.Close()
			reqID, err := erasure.Request(ctx, st, u, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "erasure request %s queued\n", reqID)
			deadline := time.Now().Add(wait)
			for {
				s, err := erasure.Get(ctx, st, reqID)
				if err != nil {
					return err
				}
				switch s.State {
				case erasure.StateDone:
					fmt.Fprintf(out, "done: removed %v\n", s.Removed)
					return nil
				case erasure.StateFailed:
					return fmt.Errorf("erasure %s failed: %s", reqID, s.Error)
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("erasure %s is %s after %s: the running gateway carries it out (is it running? the user leaves rooms once their hubs accept); check again with the same command's output later", reqID, s.State, wait)
				}
				select {
				case <-ctx.Done():
					return errors.Join(ctx.Err(), fmt.Errorf("erasure %s stays queued", reqID))
				case <-time.After(time.Second):
				}
			}
		},
	}
	c.Flags().DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for the running gateway to finish")
	return c
}
