package mls

// Benchmarks of the group engine (docs/performance.md, "core/mls groups"), suite 1:
//
//	go test -tags goolm ./core/mls -run '^$' -bench 'BenchmarkTreeSeal|BenchmarkGroup(Commit|Join|AppMessages)/N=(100|1000)$' -benchtime 10x -count 3
//	go test -tags goolm ./core/mls -run '^$' -bench 'BenchmarkGroup(Commit|Join)/N=10000$' -benchtime 3x -count 1
//	go test -tags goolm ./core/mls -run '^$' -bench 'BenchmarkTSMLS' -benchtime 1x -count 1 -timeout 30m
//
// Groups are built with the protocol: the creator adds N−1 members by Add commits in batches (50
// at N=100, 100 at N=1000, 1000 at N=10000), each commit with a path, so parents off the
// creator's direct path are blank ("blank": an update encrypts to about N−1 leaves); the receiver
// is the last member added, joined by the last Welcome. "full" injects a key into every blank
// parent of both the creator's and the receiver's tree (and the receiver's private keys for its
// direct path), as after a round of commits: an update then encrypts to one node per level.
// BenchmarkTSMLS runs the same blank-tree operations in ts-mls through the peer's bench op in the
// same run, so the rows can be compared. Every benchmark reports cpu-ns/op, the CPU time of the
// whole process per operation, besides wall time.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
)

type benchGroup struct {
	creator, receiver *goClient
	welcome           *Welcome
}

var (
	benchGroupsMu sync.Mutex
	benchGroups   = map[string]*benchGroup{}
)

func benchBatch(n int) int {
	switch {
	case n <= 100:
		return 50
	case n <= 1000:
		return 100
	}
	return 1000
}

// getBenchGroup builds (once per kind and size) a group of n members.
func getBenchGroup(b *testing.B, kind string, n int) *benchGroup {
	b.Helper()
	benchGroupsMu.Lock()
	defer benchGroupsMu.Unlock()
	key := fmt.Sprintf("%s/%d", kind, n)
	if bg := benchGroups[key]; bg != nil {
		return bg
	}
	cs := MLS128DHKEMX25519AES128GCMSHA256Ed25519
	creator := newGoClient(b, cs, "m0")
	var err error
	if creator.g, err = CreateGroup([]byte("bench"), creator.signer, creator.cred(), GroupOptions{}); err != nil {
		b.Fatal(err)
	}
	var last *goClient
	var welcome *Welcome
	for added := 1; added < n; {
		k := min(benchBatch(n), n-added)
		kps := make([]*KeyPackage, k)
		for i := range k {
			last = newGoClient(b, cs, fmt.Sprint("m", added+i))
			kps[i] = last.kp
		}
		pc, err := creator.g.Commit(CommitOptions{Add: kps})
		if err != nil {
			b.Fatal(err)
		}
		creator.g, welcome = confirm(b, pc), pc.Welcome.Welcome
		added += k
	}
	if last.g, err = JoinFromWelcome(welcome, last.kp, last.kpPriv, last.signer, JoinOptions{}); err != nil {
		b.Fatal(err)
	}
	if kind == "full" {
		fillBlankParents(b, creator.g, last.g)
	}
	bg := &benchGroup{creator: creator, receiver: last, welcome: welcome}
	benchGroups[key] = bg
	return bg
}

// fillBlankParents puts the same fresh key into every blank parent (with a non-empty resolution)
// of both members' trees and gives each member the private keys of such nodes on its direct path.
// Benchmark setup only: it edits the states in place.
func fillBlankParents(b *testing.B, gs ...*Group) {
	t0 := gs[0].tree
	for x := 1; x < len(t0.nodes); x += 2 {
		if !t0.nodes[x].blank() || t0.resolutionEmpty(nodeIndex(x)) {
			continue
		}
		seed := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("bench group node"), uint32(x)))
		priv, pub, err := t0.cs.deriveKeyPair(seed[:])
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range gs {
			g.tree.set(nodeIndex(x), nil, &ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}})
			if inSubtree(g.priv.leaf().node(), nodeIndex(x)) {
				g.priv.keys[nodeIndex(x)] = nodeKey{priv: priv, pub: pub}
			}
		}
	}
	for _, g := range gs {
		g.tree.treeHash()
	}
}

var benchGroupSizes = []int{100, 1000, 10000}

func BenchmarkGroupCommit(b *testing.B) {
	for _, kind := range []string{"blank", "full"} {
		for _, n := range benchGroupSizes {
			b.Run(fmt.Sprintf("N=%d/create/%s", n, kind), func(b *testing.B) {
				bg := getBenchGroup(b, kind, n)
				b.ResetTimer()
				m := startCPU()
				for b.Loop() {
					if _, err := bg.creator.g.Commit(CommitOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				m.report(b, b.N)
			})
			b.Run(fmt.Sprintf("N=%d/process/%s", n, kind), func(b *testing.B) {
				bg := getBenchGroup(b, kind, n)
				pc, err := bg.creator.g.Commit(CommitOptions{})
				if err != nil {
					b.Fatal(err)
				}
				raw, err := pc.Commit.Encode()
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				m := startCPU()
				for b.Loop() {
					msg, err := DecodeMLSMessage(raw)
					if err != nil {
						b.Fatal(err)
					}
					r, err := bg.receiver.g.Process(msg, ProcessOptions{})
					if err != nil || r.Commit.State == nil {
						b.Fatal(err)
					}
					// Processing the same commit again needs the receiver's state alive: forget
					// the successor (benchmark only; it costs one atomic store).
					bg.receiver.g.successor.Store(nil)
				}
				m.report(b, b.N)
				b.ReportMetric(float64(len(raw)), "commit-bytes")
			})
		}
	}
}

func BenchmarkGroupJoin(b *testing.B) {
	for _, n := range benchGroupSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			bg := getBenchGroup(b, "blank", n)
			r := bg.receiver
			b.ResetTimer()
			m := startCPU()
			for b.Loop() {
				if _, err := JoinFromWelcome(bg.welcome, r.kp, r.kpPriv, r.signer, JoinOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b, b.N)
		})
	}
}

// BenchmarkGroupAppMessages: one op is 10,000 application messages of 100 bytes encrypted by the
// creator and decrypted by the receiver.
func BenchmarkGroupAppMessages(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("N=%d/10k", n), func(b *testing.B) {
			bg := getBenchGroup(b, "blank", n)
			payload := make([]byte, 100)
			b.ResetTimer()
			m := startCPU()
			for b.Loop() {
				for range 10000 {
					msg, err := bg.creator.g.Encrypt(payload, nil)
					if err != nil {
						b.Fatal(err)
					}
					raw, err := msg.Encode()
					if err != nil {
						b.Fatal(err)
					}
					in, err := DecodeMLSMessage(raw)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := bg.receiver.g.Process(in, ProcessOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			}
			m.report(b, b.N)
		})
	}
}

// BenchmarkTSMLS measures ts-mls on the blank-tree operations (peer.mjs benchGroup: 5 update
// commits, medians; one join; 10,000 application messages). It reports the ts-mls wall and CPU
// times (node's process.cpuUsage) as metrics; the Go benchmark's own ns/op is the peer round trip and means nothing.
func BenchmarkTSMLS(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			p := startTSPeer(b)
			for b.Loop() {
				rep := p.call("bench", map[string]any{"suite": 1, "n": n, "batch": benchBatch(n), "updates": 5, "messages": 10000})
				for _, k := range []string{"update_create_ms", "update_process_ms", "join_ms", "app_encrypt_ms", "app_decrypt_ms",
					"update_create_cpu_ms", "update_process_cpu_ms", "join_cpu_ms", "app_encrypt_cpu_ms", "app_decrypt_cpu_ms"} {
					v, _ := rep[k].(float64)
					b.ReportMetric(v, "ts-"+k)
				}
			}
		})
	}
}
