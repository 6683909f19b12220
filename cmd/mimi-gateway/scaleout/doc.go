// Package scaleout tests several replicas of one provider as they run in production: a
// three-node NATS JetStream cluster (nats-server built from the module in go.mod, one process
// per node on loopback ports), PostgreSQL (a fresh schema per test), N replicas of provider A
// (separate processes of the real binary; bus.mode external with streams of three replicas,
// store.driver postgres, one shared asset directory) behind a loopback TCP front that spreads
// partners' connections over them as a Kubernetes Service would, and a partner provider B.
// A load driver publishes messages in both directions through the bus (as the adapters do)
// over 20 rooms; checkers then require every message exactly once on the receiving bus, each
// room's order kept, and the hub's and the follower's epochs equal.
//
// Each fault test is a package of its own below this one (killreplica, natsnode, pgrestart,
// rolling, fencing: TestScaleOut…), so that go test runs them in parallel with each other and
// with the other real-server suites, each within its own time limit; all run in the test
// command (.ci/test). BenchmarkScaleOut here measures one replica against three.
package scaleout
