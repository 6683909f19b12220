package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

func init() { registerAdmin(newExportUserCommand) }

// userExport is what the gateway holds about one user (right of access). Private keys and MLS
// states are described, never exported.
type userExport struct {
	User       event.UserURI `json:"user"`
	ExportedAt time.Time     `json:"exported_at"`
	Matrix     string        `json:"matrix_id,omitempty"`
	XMPP       string        `json:"xmpp_jid,omitempty"`
	// MLS is the user's MIMI identity at the gateway, if it has one.
	MLS *struct {
		Network         string    `json:"network"`
		CreatedAt       time.Time `json:"created_at"`
		SignatureKey    string    `json:"signature_public_key"`
		KeyPackages     int       `json:"key_packages_unclaimed"`
		KeyPackagesUsed int       `json:"key_packages_claimed"`
	} `json:"mls,omitempty"`
	// Rooms are the MIMI rooms the user has an MLS client in, with the current epoch.
	Rooms []exportRoom `json:"rooms"`
	// Roles are the user's entries in rooms' participant lists.
	Roles []exportRole `json:"roles"`
	// Messages are the ID mappings of messages the user sent.
	Messages []exportMessage `json:"messages"`
	// Reactions are the reactions the user made.
	Reactions []exportReaction `json:"reactions"`
	// History is what XMPP rooms keep of the user's messages (the stanza as stored).
	History []exportHistory `json:"xmpp_history"`
	// Assets counts the attachments the user uploaded that are still stored.
	Assets struct {
		Count int64 `json:"count"`
		Bytes int64 `json:"bytes"`
	} `json:"assets"`
	// Notes says what is not in this export.
	Notes []string `json:"notes"`
}

type exportRoom struct {
	Room  string `json:"room"`
	Epoch int64  `json:"epoch"`
}

type exportRole struct {
	Room string `json:"room"`
	Role int64  `json:"role"`
}

type exportMessage struct {
	Network   string    `json:"network"`
	Room      string    `json:"room"`
	NativeID  string    `json:"native_id"`
	MessageID string    `json:"mimi_message_id"`
	CreatedAt time.Time `json:"created_at"`
}

type exportReaction struct {
	Room      string    `json:"room"`
	Emoji     string    `json:"emoji"`
	CreatedAt time.Time `json:"created_at"`
}

type exportHistory struct {
	Room    string    `json:"room"`
	Nick    string    `json:"nick"`
	SentAt  time.Time `json:"sent_at"`
	Payload string    `json:"payload"`
}

// newExportUserCommand is `mimi-gateway admin export-user URI`.
func newExportUserCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "export-user URI",
		Short: "Write what the gateway holds about a user as JSON (right of access)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, u, err := g.configAndUser(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := openAdminStore(ctx, cmd, c)
			if err != nil {
				return err
			}
			defer st.Close()
			x, err := exportUser(ctx, c, st, u)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(x)
		},
	}
}

// exportUser collects the user's records from the store and the asset directory.
func exportUser(ctx context.Context, c *config.Config, st *store.Store, u event.UserURI) (*userExport, error) {
	x := &userExport{User: u, ExportedAt: time.Now().UTC(), Rooms: []exportRoom{}, Roles: []exportRole{},
		Messages: []exportMessage{}, Reactions: []exportReaction{}, History: []exportHistory{}}
	local := string(u.Domain()) == c.Domain
	ids := nativeIDsOf(c, u)
	if local {
		x.Matrix, x.XMPP = string(ids.matrix), ids.xmpp
	}
	has := func(component string) bool {
		v, err := st.SchemaVersion(ctx, component)
		return err == nil && v > 0
	}
	query := func(q string, args []any, scan func(*sql.Rows) error) error {
		rows, err := st.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		return rows.Err()
	}
	if has("provider") {
		var network string
		var created int64
		var pub []byte
		err := st.QueryRowContext(ctx, `SELECT network, created_at, sig_public FROM provider_users WHERE user_uri = ?`, string(u)).Scan(&network, &created, &pub)
		if err == nil {
			x.MLS = &struct {
				Network         string    `json:"network"`
				CreatedAt       time.Time `json:"created_at"`
				SignatureKey    string    `json:"signature_public_key"`
				KeyPackages     int       `json:"key_packages_unclaimed"`
				KeyPackagesUsed int       `json:"key_packages_claimed"`
			}{Network: network, CreatedAt: time.UnixMilli(created).UTC(), SignatureKey: hex.EncodeToString(pub)}
			_ = st.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN claimed_at = 0 THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN claimed_at <> 0 THEN 1 ELSE 0 END), 0)
				FROM provider_keypackages WHERE user_uri = ?`, string(u)).Scan(&x.MLS.KeyPackages, &x.MLS.KeyPackagesUsed)
		}
		if err := query(`SELECT room, epoch FROM provider_clients WHERE user_uri = ? ORDER BY room`, []any{string(u)}, func(r *sql.Rows) error {
			var e exportRoom
			if err := r.Scan(&e.Room, &e.Epoch); err != nil {
				return err
			}
			x.Rooms = append(x.Rooms, e)
			return nil
		}); err != nil {
			return nil, err
		}
		if err := query(`SELECT room, role FROM provider_participants WHERE user_uri = ? ORDER BY room`, []any{string(u)}, func(r *sql.Rows) error {
			var e exportRole
			if err := r.Scan(&e.Room, &e.Role); err != nil {
				return err
			}
			x.Roles = append(x.Roles, e)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if has(idmap.Component) {
		if err := query(`SELECT network, room_uri, native_id, message_id, created_at FROM idmap_messages WHERE native_sender IN (?, ?) ORDER BY created_at`,
			[]any{string(ids.matrix), ids.xmpp}, func(r *sql.Rows) error {
				var e exportMessage
				var mid []byte
				var at int64
				if err := r.Scan(&e.Network, &e.Room, &e.NativeID, &mid, &at); err != nil {
					return err
				}
				e.MessageID, e.CreatedAt = hex.EncodeToString(mid), time.UnixMilli(at).UTC()
				x.Messages = append(x.Messages, e)
				return nil
			}); err != nil {
			return nil, err
		}
		if err := query(`SELECT room_uri, emoji, created_at FROM idmap_reactions WHERE reactor = ? ORDER BY created_at`, []any{string(u)}, func(r *sql.Rows) error {
			var e exportReaction
			var at int64
			if err := r.Scan(&e.Room, &e.Emoji, &at); err != nil {
				return err
			}
			e.CreatedAt = time.UnixMilli(at).UTC()
			x.Reactions = append(x.Reactions, e)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if has(xmpp.Component) {
		h, err := xmpp.UserHistory(ctx, st, u, ids.xmpp)
		if err != nil {
			return nil, err
		}
		for _, e := range h {
			x.History = append(x.History, exportHistory{Room: e.Room, Nick: e.Nick, SentAt: e.SentAt.UTC(), Payload: e.Payload})
		}
	}
	if as, err := assets.New(filepath.Join(c.DataDirAbs(), "assets"), c.Domain, 0); err == nil {
		if x.Assets.Count, x.Assets.Bytes, err = as.CountOwner(ctx, u); err != nil {
			return nil, err
		}
	}
	x.Notes = []string{
		"private keys and MLS states are held for the user but not exported",
		"attachments are counted; their content is encrypted with keys only the messages carry",
		"dead letters are kept by the running gateway's bus (see `mimi-gateway admin dlq`)",
	}
	return x, nil
}
