// Package asapi is the HTTP endpoint that an appservice offers its homeserver (the Matrix
// application service API): PUT /transactions, with the homeserver's token checked in constant
// time, bounded in size and events, deduplicated by transaction ID in the store and acknowledged
// only after every event was handled; GET /users (does a ghost exist), GET /rooms (aliases: none
// are provided) and POST /ping. What an event means is the adapter's (bridges/matrix).
package asapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// maxTxnIDLength bounds a transaction ID from the homeserver.
const maxTxnIDLength = 255

// maxTransactionEvents bounds the events of one transaction (Synapse sends at most 100, Dendrite 50).
const maxTransactionEvents = 1000

// Config configures Handler.
type Config struct {
	// Token is the homeserver's token (hs_token of the registration).
	Token string
	// MaxTransactionSize bounds a transaction's body in bytes.
	MaxTransactionSize int64
	// Store and Scope keep the IDs of the transactions handled (their dedupe).
	Store *store.Store
	Scope store.Scope
	Log   *slog.Logger
	// Event handles one raw event of a transaction. An error means the event must be retried: the
	// transaction is answered with an error, and the homeserver sends it again.
	Event func(ctx context.Context, raw json.RawMessage) error
	// Events, when set, handles all raw events of a transaction instead of Event, in order, and
	// returns once all of them are durable (so that an adapter can make them durable together).
	// An error means the transaction must be retried, as with Event; failed is the index of the
	// event that failed (-1: several).
	Events func(ctx context.Context, events []json.RawMessage) (failed int, err error)
	// Ghost registers u when it is a ghost of the appservice; false: u is none.
	Ghost func(ctx context.Context, u id.UserID) (bool, error)
	// BeforeAck, when set (tests), runs after a transaction's events were handled and before it
	// is acknowledged; returning true ends the request without an answer (a simulated crash).
	BeforeAck func(w http.ResponseWriter, txnID string, events []json.RawMessage) bool
	// Transactions counts transactions by result (ok, duplicate, unauthorized, bad_request,
	// error); nil counts nothing.
	Transactions *prometheus.CounterVec
}

type endpoint struct{ cfg Config }

// Handler returns the endpoint's routes.
func Handler(cfg Config) http.Handler {
	e := &endpoint{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnID}", e.handleTransaction)
	mux.HandleFunc("GET /_matrix/app/v1/users/{userID}", e.handleQueryUser)
	mux.HandleFunc("GET /_matrix/app/v1/rooms/{alias}", e.handleQueryAlias)
	mux.HandleFunc("POST /_matrix/app/v1/ping", e.handlePing)
	return mux
}

func (e *endpoint) count(result string) {
	if e.cfg.Transactions != nil {
		e.cfg.Transactions.WithLabelValues(result).Inc()
	}
}

// checkToken compares the homeserver's token in constant time.
func (e *endpoint) checkToken(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok = r.URL.Query().Get("access_token") // legacy homeservers
	}
	if tok == "" {
		mautrix.MMissingToken.WithMessage("Missing access token").Write(w)
		e.count("unauthorized")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(e.cfg.Token)) != 1 {
		mautrix.MForbidden.WithMessage("Invalid access token").Write(w)
		e.count("unauthorized")
		return false
	}
	return true
}

// transaction is the body of PUT /transactions; events stay raw so that one malformed event cannot
// reject the whole transaction.
type transaction struct {
	Events []json.RawMessage `json:"events"`
}

// handleTransaction hands every event of the transaction to Config.Event before answering 200.
// Transaction IDs are deduplicated in the store, so a transaction redelivered after a crash is
// processed once. A failure answers 500 and the homeserver retries.
func (e *endpoint) handleTransaction(w http.ResponseWriter, r *http.Request) {
	if !e.checkToken(w, r) {
		return
	}
	txnID := r.PathValue("txnID")
	// An ID the store cannot hold (not UTF-8 text, or with NUL) is the homeserver's error: refused
	// here, not answered as a store failure that the homeserver would retry for ever.
	if txnID == "" || len(txnID) > maxTxnIDLength || !utf8.ValidString(txnID) || strings.IndexByte(txnID, 0) >= 0 {
		mautrix.MInvalidParam.WithMessage("Invalid transaction ID").Write(w)
		e.count("bad_request")
		return
	}
	// Handling must not stop when the homeserver gives up on the request; it continues and the
	// redelivery finds the events deduplicated.
	ctx := context.WithoutCancel(r.Context())
	log := e.cfg.Log.With("txn_id", txnID)
	done, err := e.cfg.Store.IsProcessed(ctx, e.cfg.Scope, txnID)
	if err != nil {
		log.Error("transaction dedupe failed", "error", err)
		mautrix.MUnknown.WithMessage("store unavailable").Write(w)
		e.count("error")
		return
	}
	if done {
		writeEmptyJSON(w)
		e.count("duplicate")
		log.Debug("duplicate transaction acknowledged")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, e.cfg.MaxTransactionSize+1))
	if err != nil || int64(len(body)) > e.cfg.MaxTransactionSize {
		mautrix.MTooLarge.WithMessage("Transaction too large or unreadable").Write(w)
		e.count("bad_request")
		return
	}
	var txn transaction
	if err := json.Unmarshal(body, &txn); err != nil {
		log.Warn("transaction is not valid JSON", "error", err)
		mautrix.MNotJSON.WithMessage("Transaction is not valid JSON").Write(w)
		e.count("bad_request")
		return
	}
	if len(txn.Events) > maxTransactionEvents {
		log.Warn("transaction has too many events", "events", len(txn.Events))
		mautrix.MTooLarge.WithMessage("Too many events").Write(w)
		e.count("bad_request")
		return
	}
	if i, err := e.handleEvents(ctx, txn.Events); err != nil {
		log.Error("transaction not acknowledged, homeserver will retry", "event_index", i, "error", err)
		mautrix.MUnknown.WithMessage("Temporary failure").Write(w)
		e.count("error")
		return
	}
	if e.cfg.BeforeAck != nil && e.cfg.BeforeAck(w, txnID, txn.Events) {
		return // the test hook simulated a crash between publishing and answering
	}
	if _, err := e.cfg.Store.MarkProcessed(ctx, e.cfg.Scope, txnID); err != nil {
		log.Error("recording transaction failed", "error", err)
		mautrix.MUnknown.WithMessage("store unavailable").Write(w)
		e.count("error")
		return
	}
	writeEmptyJSON(w)
	e.count("ok")
}

// handleEvents hands a transaction's events to Config.Events, or one by one to Config.Event.
func (e *endpoint) handleEvents(ctx context.Context, events []json.RawMessage) (int, error) {
	if e.cfg.Events != nil {
		return e.cfg.Events(ctx, events)
	}
	for i, raw := range events {
		if err := e.cfg.Event(ctx, raw); err != nil {
			return i, err
		}
	}
	return 0, nil
}

func writeEmptyJSON(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{}"))
}

// handleQueryUser answers the homeserver's question whether a user of the appservice's namespace
// exists: a ghost does (Config.Ghost registers it on first use).
func (e *endpoint) handleQueryUser(w http.ResponseWriter, r *http.Request) {
	if !e.checkToken(w, r) {
		return
	}
	ok, err := e.cfg.Ghost(r.Context(), id.UserID(r.PathValue("userID")))
	switch {
	case err != nil:
		mautrix.MUnknown.WithMessage("Could not register ghost").Write(w)
	case !ok:
		mautrix.MNotFound.WithMessage("Not a MIMI ghost").Write(w)
	default:
		writeEmptyJSON(w)
	}
}

func (e *endpoint) handleQueryAlias(w http.ResponseWriter, r *http.Request) {
	if !e.checkToken(w, r) {
		return
	}
	mautrix.MNotFound.WithMessage("Aliases are not provided").Write(w)
}

func (e *endpoint) handlePing(w http.ResponseWriter, r *http.Request) {
	if !e.checkToken(w, r) {
		return
	}
	writeEmptyJSON(w)
}
