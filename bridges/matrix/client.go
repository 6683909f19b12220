package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxlog"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/timperm"
)

// startClient logs the functional account in with its own E2EE device, labels it as a bot and
// starts the sync loop.
func (a *Adapter) startClient(ctx, runCtx context.Context) error {
	cc := a.cfg.Client
	cli, err := mautrix.NewClient(a.cfg.HomeserverURL, cc.UserID, cc.AccessToken)
	if err != nil {
		return fmt.Errorf("matrix: client: %w", err)
	}
	cli.Log = mxlog.Zerolog(a.log)
	cli.StateStore = a.stateStore
	a.syncStore = e2ee.NewSyncStore(a.st.KV(scopeKV), cc.UserID)
	cli.Store = a.syncStore
	sy := e2ee.NewSyncer(a.syncStore)
	cli.Syncer = sy
	a.client = cli
	if _, err := cli.Versions(ctx); err != nil {
		return fmt.Errorf("matrix: homeserver versions: %w", err)
	}
	var login *mautrix.ReqLogin
	if cc.AccessToken != "" {
		cli.DeviceID = cc.DeviceID
	} else {
		local, _, _ := cc.UserID.Parse()
		login = &mautrix.ReqLogin{
			Type:                     mautrix.AuthTypePassword,
			Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: local},
			Password:                 cc.Password,
			InitialDeviceDisplayName: "MIMI gateway " + botLabel,
		}
	}
	if err := a.setupCrypto(ctx, cli, login, sy); err != nil {
		return err
	}
	if err := cli.SetDisplayName(ctx, cc.DisplayName); err != nil {
		a.log.Warn("setting the functional account's display name failed", "error", err)
	}
	sy.OnEvent(cli.StateStoreSyncHandler)
	// Each room's timeline goes through the catch-up, as the appservice bot's does (package
	// catchup): in order, a limited timeline filled from /messages, nothing from before the
	// account joined. Invites come in the sync's invite section.
	a.catchUpOn(sy, cli, nil)
	sy.OnEvent(func(ctx context.Context, evt *mevent.Event) {
		if evt.Mautrix.EventSource&mevent.SourceInvite == 0 || evt.Type != mevent.StateMember || evt.GetStateKey() != string(cc.UserID) {
			return
		}
		if err := a.ingest(ctx, evt); err != nil {
			sy.Fail(err)
		}
	})
	sy.OnEventType(mevent.EphemeralEventReceipt, func(ctx context.Context, evt *mevent.Event) {
		if err := a.ingestReceipt(ctx, evt); err != nil {
			sy.Fail(err)
		}
	})
	sy.ParseErrorHandler = a.parseError
	sy.After = func(context.Context) { a.readyOne.Do(func() { close(a.ready) }) }
	sy.Back = a.homeserverBack
	a.startSync(runCtx, cli)
	a.log.Info("client mode logged in", "user_id", string(cli.UserID), "device_id", string(cli.DeviceID))
	return nil
}

// parseError decides about an event whose content the sync could not parse: content that is
// parsed already (the same event object seen twice in one response) and event types mautrix does
// not know are passed on (the adapter ignores types it does not relay); anything else is
// malformed and skipped.
func (a *Adapter) parseError(evt *mevent.Event, err error) bool {
	if errors.Is(err, mevent.ErrContentAlreadyParsed) || errors.Is(err, mevent.ErrUnsupportedContentType) {
		return true
	}
	a.skip(context.Background(), evt, fmt.Errorf("%w: %v", ErrMalformed, err))
	return false
}

// inviteAllowed applies the functional account's invite permissions (timperm) to an inviter.
// Without account data the TI-M default (allow all) applies. Group exceptions (isInsuredPerson)
// need a VZD-FHIR lookup that the gateway does not do; they are logged.
func (a *Adapter) inviteAllowed(ctx context.Context, inviter id.UserID) (bool, string, error) {
	if !*a.cfg.Client.PermissionCheck {
		return true, "permission check disabled", nil
	}
	var pc timperm.Config
	found := false
	for _, t := range []string{permissionConfigType, permissionConfigBasic} {
		err := a.client.GetAccountData(ctx, t, &pc)
		if err == nil {
			found = true
			break
		}
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.Response != nil && he.Response.StatusCode == http.StatusNotFound {
			continue
		}
		return false, "", fmt.Errorf("matrix: read invite permissions: %w", err)
	}
	if !found {
		return true, "no permission config (default allow all)", nil
	}
	if len(pc.GroupExceptions) > 0 {
		a.log.Info("invite permissions contain group exceptions, which need a directory lookup and are not applied")
	}
	allowed, why := pc.Allows(inviter)
	return allowed, why, nil
}
