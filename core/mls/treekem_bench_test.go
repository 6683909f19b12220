package mls

// Benchmarks of the ratchet tree and TreeKEM (docs/performance.md, "core/mls tree"):
//
//	go test ./core/mls -run '^$' -bench 'BenchmarkTree(Seal|HashLeafChange|Validate)' -benchmem -count 3
//	go test ./core/mls -run '^$' -bench 'BenchmarkUpdatePath(Create|Process)/(blank|full)/N=(100|1000)$' -benchmem -count 3
//	go test ./core/mls -run '^$' -bench 'BenchmarkUpdatePath(Create|Process)/(blank|full)/N=10000$' -benchmem -benchtime 3x -count 3
//	go test ./core/mls -run '^$' -bench 'BenchmarkUpdatePathVsSeals' -benchtime 5x -count 3
//
// Trees (suite 1): "blank" has N members added one by one with no commit, so every parent is
// blank and an UpdatePath from leaf 0 encrypts to the N−1 other leaves; "full" has a key in every
// parent node (as after a round of commits), so it encrypts to one node per level. Besides wall
// ns/op each benchmark reports cpu-ns/op, the CPU time of the whole process per operation (all
// HPKE workers included), which stays meaningful on the shared machine.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"
)

// benchTree is a tree of N members with the private state of leaf 0 (sender) and of the last
// leaf (receiver).
type benchTree struct {
	tree     *ratchetTree
	members  []*treeMember
	privs    map[leafIndex]*treePrivate
	receiver leafIndex
}

var (
	benchTreesMu sync.Mutex
	benchTrees   = map[string]*benchTree{}
	benchMembers []*treeMember
)

// benchMembersN returns n members of suite 1, built once and shared by all benchmark trees.
func benchMembersN(b *testing.B, s *suite, n int) []*treeMember {
	for len(benchMembers) < n {
		benchMembers = append(benchMembers, newTreeMember(b, s, len(benchMembers)))
	}
	return benchMembers[:n]
}

// getBenchTree builds (once) the blank or full tree of n members.
func getBenchTree(b *testing.B, kind string, n int) *benchTree {
	b.Helper()
	benchTreesMu.Lock()
	defer benchTreesMu.Unlock()
	key := fmt.Sprintf("%s/%d", kind, n)
	if bt := benchTrees[key]; bt != nil {
		return bt
	}
	s := suite1(b)
	ms := benchMembersN(b, s, n)
	tr := newRatchetTree(s, ms[0].leaf)
	for _, m := range ms[1:] {
		tr.addLeaf(m.leaf)
	}
	recv := leafIndex(n - 1)
	privs := map[leafIndex]*treePrivate{
		0:    newTreePrivate(0, ms[0].encPriv, ms[0].leaf.EncryptionKey),
		recv: newTreePrivate(recv, ms[recv].encPriv, ms[recv].leaf.EncryptionKey),
	}
	if kind == "full" {
		for x := 1; x < len(tr.nodes); x += 2 {
			if tr.resolutionEmpty(nodeIndex(x)) {
				continue
			}
			seed := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("bench node"), uint32(x)))
			priv, pub, err := s.deriveKeyPair(seed[:])
			if err != nil {
				b.Fatal(err)
			}
			tr.set(nodeIndex(x), nil, &ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}})
			for l, p := range privs {
				if inSubtree(l.node(), nodeIndex(x)) {
					p.keys[nodeIndex(x)] = nodeKey{priv: priv, pub: pub}
				}
			}
		}
	}
	tr.treeHash()
	bt := &benchTree{tree: tr, members: ms, privs: privs, receiver: recv}
	benchTrees[key] = bt
	return bt
}

func benchGroupContext(b *testing.B, treeHash []byte) []byte {
	gc := &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: 1, GroupID: []byte("bench group"),
		Epoch: 7, TreeHash: treeHash, ConfirmedTranscriptHash: make([]byte, 32)}
	out, err := gc.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return out
}

var benchSizes = []int{100, 1000, 10000}

// BenchmarkTreeSeal is one EncryptWithLabel of a path secret, the unit the UpdatePath
// benchmarks are compared with.
func BenchmarkTreeSeal(b *testing.B) {
	s := suite1(b)
	m := newTreeMember(b, s, 1)
	secret := make([]byte, s.hashSize())
	gc := benchGroupContext(b, make([]byte, 32))
	cpu := startCPU()
	for b.Loop() {
		if _, _, err := s.encryptWithLabel(m.leaf.EncryptionKey, labelUpdatePathNode, gc, secret); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N)
}

// BenchmarkTreeHashLeafChange replaces one leaf of a full tree and recomputes the tree hash
// (incremental), against re-hashing the whole tree.
func BenchmarkTreeHashLeafChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		bt := getBenchTree(b, "full", n)
		b.Run(fmt.Sprintf("incremental/N=%d", n), func(b *testing.B) {
			tr := bt.tree.clone()
			l := leafIndex(n / 2)
			lns := []*LeafNode{bt.members[l].leaf, bt.members[l+1].leaf}
			i := 0
			cpu := startCPU()
			for b.Loop() {
				tr.set(l.node(), lns[i&1], nil)
				tr.treeHash()
				i++
			}
			cpu.report(b, b.N)
		})
		b.Run(fmt.Sprintf("full-rehash/N=%d", n), func(b *testing.B) {
			tr := bt.tree.clone()
			cpu := startCPU()
			for b.Loop() {
				for x := range tr.nodes {
					tr.nodes[x].hash = nil
				}
				tr.treeHash()
			}
			cpu.report(b, b.N)
		})
	}
}

// BenchmarkTreeValidate validates a received tree of 1000 members (tree hash from scratch,
// parent hashes, 1000 leaf signatures on GOMAXPROCS workers, capabilities, key uniqueness).
func BenchmarkTreeValidate(b *testing.B) {
	bt := getBenchTree(b, "blank", 1000)
	wire := bt.tree.wire()
	cpu := startCPU()
	for b.Loop() {
		tr, err := ratchetTreeFromWire(bt.tree.cs, wire)
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.validate(&treeCheck{treeHash: bt.tree.treeHash()}); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N)
}

// BenchmarkUpdatePathCreate is a committer's whole path: clone the epoch's tree, new leaf and path
// keys, parent hashes, leaf signature, tree hash, provisional GroupContext, HPKE encryptions.
func BenchmarkUpdatePathCreate(b *testing.B) {
	for _, kind := range []string{"blank", "full"} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/N=%d", kind, n), func(b *testing.B) {
				bt := getBenchTree(b, kind, n)
				m := bt.members[0]
				seals := 0
				cpu := startCPU()
				for b.Loop() {
					tr := bt.tree.clone()
					pp, err := tr.applyNewPath(pathOptions{groupID: []byte("bench group"), leaf: 0, template: m.leaf, signer: m.signer})
					if err != nil {
						b.Fatal(err)
					}
					up, err := pp.encrypt(benchGroupContext(b, tr.treeHash()))
					if err != nil {
						b.Fatal(err)
					}
					seals = 0
					for _, n := range up.Nodes {
						seals += len(n.EncryptedPathSecret)
					}
				}
				cpu.report(b, b.N)
				b.ReportMetric(float64(seals), "seals/op")
			})
		}
	}
}

// BenchmarkUpdatePathProcess is a receiver's whole path (the last leaf, whose common ancestor
// with leaf 0 is the root): clone, verify and merge the path (signature, parent hash), tree hash,
// provisional GroupContext, one HPKE decryption, key derivation up the path.
func BenchmarkUpdatePathProcess(b *testing.B) {
	for _, kind := range []string{"blank", "full"} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/N=%d", kind, n), func(b *testing.B) {
				bt := getBenchTree(b, kind, n)
				m := bt.members[0]
				ct := bt.tree.clone()
				pp, err := ct.applyNewPath(pathOptions{groupID: []byte("bench group"), leaf: 0, template: m.leaf, signer: m.signer})
				if err != nil {
					b.Fatal(err)
				}
				up, err := pp.encrypt(benchGroupContext(b, ct.treeHash()))
				if err != nil {
					b.Fatal(err)
				}
				priv := bt.privs[bt.receiver]
				cpu := startCPU()
				for b.Loop() {
					tr := bt.tree.clone()
					if err := tr.mergeUpdatePath(0, up, []byte("bench group")); err != nil {
						b.Fatal(err)
					}
					res, err := priv.decryptPath(tr, 0, up, nil, benchGroupContext(b, tr.treeHash()))
					if err != nil {
						b.Fatal(err)
					}
					if string(res.commitSecret) != string(pp.commitSecret()) {
						b.Fatal("commit secrets differ")
					}
				}
				cpu.report(b, b.N)
			})
		}
	}
}

// BenchmarkUpdatePathVsSeals compares creating an UpdatePath on the blank tree with (N−1)
// sequential HPKE seals of the same path secrets to the same recipients, timed back to back in
// every iteration so that load on the shared machine affects both alike. It reports the wall and
// CPU time of each and their ratios (create / seals); the target is a wall ratio ≤ 1.5.
func BenchmarkUpdatePathVsSeals(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("blank/N=%d", n), func(b *testing.B) {
			bt := getBenchTree(b, "blank", n)
			m := bt.members[0]
			var createWall, sealWall, createCPU, sealCPU time.Duration
			cpuNow := func() time.Duration { d, _ := processCPUTime(); return d }
			for b.Loop() {
				w0, c0 := time.Now(), cpuNow()
				tr := bt.tree.clone()
				pp, err := tr.applyNewPath(pathOptions{groupID: []byte("bench group"), leaf: 0, template: m.leaf, signer: m.signer})
				if err != nil {
					b.Fatal(err)
				}
				gc := benchGroupContext(b, tr.treeHash())
				if _, err := pp.encrypt(gc); err != nil {
					b.Fatal(err)
				}
				w1, c1 := time.Now(), cpuNow()
				for i := range pp.path {
					for _, pub := range pp.recipients[i] {
						if _, _, err := pp.cs.encryptWithLabel(pub, labelUpdatePathNode, gc, pp.secrets[i]); err != nil {
							b.Fatal(err)
						}
					}
				}
				w2, c2 := time.Now(), cpuNow()
				createWall += w1.Sub(w0)
				sealWall += w2.Sub(w1)
				createCPU += c1 - c0
				sealCPU += c2 - c1
			}
			per := func(d time.Duration) float64 { return float64(d) / float64(b.N) }
			b.ReportMetric(per(createWall), "create-ns/op")
			b.ReportMetric(per(sealWall), "seals-ns/op")
			b.ReportMetric(float64(createWall)/float64(sealWall), "wall-ratio")
			if sealCPU > 0 {
				b.ReportMetric(float64(createCPU)/float64(sealCPU), "cpu-ratio")
			}
		})
	}
}
