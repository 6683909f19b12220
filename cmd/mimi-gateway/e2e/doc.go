// Package e2e is the end-to-end suite: gateways as separate processes of the real binary, each
// organisation with its real server (Dendrite, Prosody) and its users' real clients (a mautrix-go
// E2EE client per Matrix user, an XMPP c2s client per XMPP user), for every pairing of networks
// the gateway supports. Its gateway configurations are the blocks of docs/walkthrough.md. It has
// tests only; see cmd/mimi-gateway/internal/gatewaytest for the harness.
package e2e
