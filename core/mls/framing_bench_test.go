package mls

// Benchmarks of message framing and the wire codecs (docs/performance.md, "core/mls framing"):
//
//	go test ./core/mls -run '^$' -bench 'Benchmark(PrivateMessage|Codec)' -benchmem -count 3

import (
	"fmt"
	"testing"
	"time"
)

// cpuMeter reports the process CPU time per operation as the metric "cpu-ns/op".
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuMeter {
	t, ok := processCPUTime()
	return cpuMeter{start: t, ok: ok}
}

func (m cpuMeter) report(b *testing.B, n int) {
	end, ok := processCPUTime()
	if !m.ok || !ok || n == 0 {
		return
	}
	b.ReportMetric(float64(end-m.start)/float64(n), "cpu-ns/op")
}

// framingBench is a two-member group of one suite whose leaf 1 sends, with the epoch secrets drawn
// at random.
type framingBench struct {
	s                *suite
	ctx              *GroupContext
	sigKey           signingKey
	sigPub           []byte
	encryptionSecret []byte
	senderDataSecret []byte
}

func newFramingBench(b *testing.B, cs CipherSuite) *framingBench {
	b.Helper()
	s, err := cs.impl()
	if err != nil {
		b.Fatal(err)
	}
	priv, pub, err := s.generateSignatureKeyPair(nil)
	if err != nil {
		b.Fatal(err)
	}
	rnd := func(n int) []byte {
		r, err := randomBytes(nil, n)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	key, err := s.parseSigningKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	return &framingBench{
		s:      s,
		ctx:    &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: cs, GroupID: rnd(16), Epoch: 7, TreeHash: rnd(s.nh), ConfirmedTranscriptHash: rnd(s.nh)},
		sigKey: key, sigPub: pub,
		encryptionSecret: rnd(s.nh), senderDataSecret: rnd(s.nh),
	}
}

func (fb *framingBench) tree(b *testing.B) *secretTree {
	t, err := newSecretTree(fb.s, fb.encryptionSecret, 2, secretTreeLimits{maxForward: 1 << 30, maxRetained: 0})
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// protect signs and encrypts an application message from leaf 1, padded to a multiple of 32 bytes.
func (fb *framingBench) protect(tree *secretTree, data []byte) (*PrivateMessage, error) {
	fc := &FramedContent{GroupID: fb.ctx.GroupID, Epoch: fb.ctx.Epoch, Sender: Sender{Type: SenderTypeMember, Index: 1},
		ContentType: ContentTypeApplication, ApplicationData: data}
	ac, err := signContent(fb.s, WireFormatPrivateMessage, fc, ctxBytesOf(fb.ctx), fb.sigKey)
	if err != nil {
		return nil, err
	}
	return protectPrivate(fb.s, ac, tree, fb.senderDataSecret, 32)
}

// BenchmarkPrivateMessageProtect measures sending a 1 KiB application message: sign FramedContentTBS,
// take the next key of the sender's ratchet, encrypt content and sender data, encode the MLSMessage.
func BenchmarkPrivateMessageProtect(b *testing.B) {
	for _, cs := range SupportedCipherSuites() {
		b.Run(fmt.Sprintf("suite%d", cs), func(b *testing.B) {
			fb := newFramingBench(b, cs)
			tree := fb.tree(b)
			data := make([]byte, 1024)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			n, cpu := 0, startCPU()
			for b.Loop() {
				n++
				pm, err := fb.protect(tree, data)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}).Encode(); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, n)
		})
	}
}

// BenchmarkPrivateMessageUnprotect measures receiving a 1 KiB application message: decode the
// MLSMessage, decrypt sender data and content (the receiver's ratchet advances one generation per
// message, as in order delivery), verify the signature. The messages are made before the timer starts.
func BenchmarkPrivateMessageUnprotect(b *testing.B) {
	for _, cs := range SupportedCipherSuites() {
		b.Run(fmt.Sprintf("suite%d", cs), func(b *testing.B) {
			fb := newFramingBench(b, cs)
			sender := fb.tree(b)
			data := make([]byte, 1024)
			msgs := make([][]byte, b.N)
			for i := range msgs {
				pm, err := fb.protect(sender, data)
				if err != nil {
					b.Fatal(err)
				}
				if msgs[i], err = (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}).Encode(); err != nil {
					b.Fatal(err)
				}
			}
			receiver := fb.tree(b)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for i := 0; i < b.N; i++ {
				m, err := DecodeMLSMessage(msgs[i])
				if err != nil {
					b.Fatal(err)
				}
				ac, err := unprotectPrivate(fb.s, m.PrivateMessage, fb.ctx, receiver, fb.senderDataSecret)
				if err != nil {
					b.Fatal(err)
				}
				if err := verifyContent(fb.s, ac, ctxBytesOf(fb.ctx), fb.sigPub); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, b.N)
		})
	}
}

// benchKeyPackage returns the KeyPackage of the first messages.json case.
func benchKeyPackage(b *testing.B) *KeyPackage {
	b.Helper()
	c := messagesCase(b, 0)
	m, err := DecodeMLSMessage(c["mls_key_package"])
	if err != nil {
		b.Fatal(err)
	}
	return m.KeyPackage
}

// largeCommit builds the Commit of a member adding 50 KeyPackages and updating its path in a group of
// 1,000 members whose parent nodes are blank: 10 UpdatePathNodes holding 999 HPKECiphertexts in
// all (32-byte KEM output, 48-byte ciphertext, as suite 1 makes them).
func largeCommit(b *testing.B) *Commit {
	b.Helper()
	kp := benchKeyPackage(b)
	c := &Commit{}
	for range 50 {
		c.Proposals = append(c.Proposals, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeAdd, KeyPackage: kp}})
	}
	leaf := kp.LeafNode
	leaf.Source = LeafNodeSourceCommit
	leaf.ParentHash = make([]byte, 32)
	path := &UpdatePath{LeafNode: leaf}
	remaining := 999
	for level := range 10 {
		n := min(1<<level, remaining)
		remaining -= n
		node := UpdatePathNode{EncryptionKey: make([]byte, 32)}
		for range n {
			node.EncryptedPathSecret = append(node.EncryptedPathSecret, HPKECiphertext{KEMOutput: make([]byte, 32), Ciphertext: make([]byte, 48)})
		}
		path.Nodes = append(path.Nodes, node)
	}
	c.Path = path
	return c
}

// BenchmarkCodec measures decoding and encoding a KeyPackage (as an MLSMessage) and a large Commit.
func BenchmarkCodec(b *testing.B) {
	kpMsg, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: benchKeyPackage(b)}).Encode()
	if err != nil {
		b.Fatal(err)
	}
	commit, err := largeCommit(b).Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("KeyPackage/decode", func(b *testing.B) {
		b.SetBytes(int64(len(kpMsg)))
		b.ReportAllocs()
		n, cpu := 0, startCPU()
		for b.Loop() {
			n++
			if _, err := DecodeMLSMessage(kpMsg); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, n)
	})
	b.Run("KeyPackage/encode", func(b *testing.B) {
		m, _ := DecodeMLSMessage(kpMsg)
		b.SetBytes(int64(len(kpMsg)))
		b.ReportAllocs()
		n, cpu := 0, startCPU()
		for b.Loop() {
			n++
			if _, err := m.Encode(); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, n)
	})
	b.Run(fmt.Sprintf("Commit%dB/decode", len(commit)), func(b *testing.B) {
		b.SetBytes(int64(len(commit)))
		b.ReportAllocs()
		n, cpu := 0, startCPU()
		for b.Loop() {
			n++
			if _, err := DecodeCommit(commit); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, n)
	})
	b.Run(fmt.Sprintf("Commit%dB/encode", len(commit)), func(b *testing.B) {
		c, _ := DecodeCommit(commit)
		b.SetBytes(int64(len(commit)))
		b.ReportAllocs()
		n, cpu := 0, startCPU()
		for b.Loop() {
			n++
			if _, err := c.Encode(); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, n)
	})
}
