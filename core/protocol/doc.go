// Package protocol is the MIMI server-to-server transport (draft-ietf-mimi-protocol-06): the
// TLS-PL wire structs with their codecs, an HTTPS server with mutual TLS that authenticates the
// calling provider and hands typed, decoded requests to a Handler, a Client that sends typed
// requests to partners, endpoint discovery through /.well-known/mimi-protocol-directory with
// caching, and the hub's durable /notify outbox.
//
// Every reading of a broken or open part of the draft is kept in readings.go and listed in
// docs/interop.md.
//
// # Server
//
//	srv, err := protocol.NewServer(protocol.ServerConfig{
//		Domain: "a.example", Certificate: cert, ClientCAs: pool,
//		Partners: partners, Handler: provider, Store: st,
//	})
//	addr, err := srv.Listen(cfg.MIMI.Address)
//	defer srv.Shutdown(ctx)
//
// A request is served only if the peer presented a client certificate that chains to ClientCAs
// and is valid for the domain of its From: mimi@<domain> header, and that domain is in Partners;
// otherwise 401/403 with an RFC 9457 problem body. Bodies must have Content-Type MediaType (415)
// and stay under Limits (413). /notify is accepted only from the room's hub; update,
// submitMessage and groupInfo only for rooms of our domain. The Handler serves keyMaterial and
// /notify; HubHandler (update, submitMessage, groupInfo) and ProxyDownloadHandler are optional
// capabilities found by type assertion.
//
// /notify bodies are deduplicated durably: the server marks SHA-256(hub, body) processed with
// store.MarkProcessed and calls Handler.Notify inside the same transaction, so a redelivery —
// also after a restart — is answered 201 without reaching the handler again.
//
// # Client
//
// Client sends requests to configured partners only (ErrNotPartner otherwise), with our
// certificate, verifying the partner's certificate for its provider domain, through the
// partner's static base URL or its discovered directory.
//
// # Outbox
//
// A hub accepts a message and queues its fanout in one transaction:
//
//	err := st.InTx(ctx, func(tx *store.Tx) error {
//		// ... sequence the message, persist room state ...
//		return outbox.Enqueue(ctx, tx, follower, room, &protocol.FanoutMessage{...})
//	})
//	outbox.Wake()
//
// Outbox.Run delivers each (follower, room) queue in order, one request at a time, retrying with
// exponential backoff or the follower's Retry-After; the rows live in the store (Schema), so
// delivery resumes after a restart.
package protocol
