package mls

// The secret tree of RFC 9420 §9 and the sender-data keys of §6.3.2.
//
// Forward secrecy rules implemented here (§9.2):
//   - a tree node's secret is deleted as soon as both children's secrets are derived from it;
//   - a leaf's secret is deleted once its handshake and application ratchets are initialised;
//   - a ratchet secret is replaced by the next generation's secret as soon as it has been used;
//   - a key/nonce pair is handed out once and then deleted; keys skipped over while jumping forward
//     are retained, up to a bound, for out-of-order messages and deleted when used or evicted.
//
// A secretTree is safe for concurrent use (one mutex; the work under it is a few HKDF calls).

import (
	"errors"
	"fmt"
	"sync"
)

// ratchetType selects one of the two hash ratchets of a leaf.
type ratchetType uint8

const (
	ratchetHandshake   ratchetType = iota // proposals and commits
	ratchetApplication                    // application data
)

func (r ratchetType) String() string {
	if r == ratchetHandshake {
		return "handshake"
	}
	return "application"
}

// Errors reported by the secret tree; test with errors.Is.
var (
	// ErrGenerationTooOld means the key for the generation was already used or deleted (replay, or a
	// message older than the retention window).
	ErrGenerationTooOld = errors.New("mls: generation already consumed or no longer retained")
	// ErrGenerationTooFar means the generation lies further ahead than the out-of-order window allows.
	ErrGenerationTooFar = errors.New("mls: generation too far ahead of the ratchet")
	// ErrLeafOutOfRange means the leaf index is not in the tree.
	ErrLeafOutOfRange = errors.New("mls: leaf index out of range")
)

// secretTreeLimits bounds the out-of-order window of every ratchet.
type secretTreeLimits struct {
	// maxForward is the largest number of generations a receiver may skip ahead in one message.
	maxForward uint32
	// maxRetained is the largest number of skipped keys a ratchet keeps for late messages; the
	// oldest are evicted first.
	maxRetained int
}

// defaultSecretTreeLimits are the limits used unless configured otherwise: generous enough for
// real-world reordering, small enough to bound the memory and CPU an attacker can make us spend
// (at most maxForward HKDF triples per message, maxRetained keys per ratchet).
var defaultSecretTreeLimits = secretTreeLimits{maxForward: 1024, maxRetained: 256}

// ratchetKey is one generation's AEAD key and nonce.
type ratchetKey struct {
	key, nonce []byte
}

// hashRatchet is one handshake or application ratchet of a leaf.
type hashRatchet struct {
	next     uint32 // generation of secret
	secret   []byte // ratchet secret for generation next
	retained map[uint32]ratchetKey
	order    []uint32 // retained generations in insertion (ascending) order, for eviction
	spent    bool     // the ratchet reached generation 2^32-1 and cannot advance
}

// secretTree holds the secret tree of one epoch.
type secretTree struct {
	s       *suite
	nLeaves uint32
	limits  secretTreeLimits

	mu       sync.Mutex
	nodes    map[nodeIndex][]byte // secrets of tree nodes not yet consumed
	ratchets map[leafIndex]*[2]hashRatchet
}

// newSecretTree returns the secret tree rooted at encryptionSecret for a group with nLeaves leaves
// (the tree's leaf count, a power of two). The caller should discard encryptionSecret afterwards.
func newSecretTree(s *suite, encryptionSecret []byte, nLeaves uint32, limits secretTreeLimits) (*secretTree, error) {
	if !isPowerOfTwo(nLeaves) {
		return nil, fmt.Errorf("mls: secret tree with %d leaves: not a power of two", nLeaves)
	}
	if len(encryptionSecret) != s.nh {
		return nil, fmt.Errorf("mls: encryption secret of %d bytes, want %d", len(encryptionSecret), s.nh)
	}
	if limits.maxRetained < 0 {
		limits.maxRetained = 0
	}
	t := &secretTree{
		s:        s,
		nLeaves:  nLeaves,
		limits:   limits,
		nodes:    map[nodeIndex][]byte{rootNode(nLeaves): append([]byte(nil), encryptionSecret...)},
		ratchets: map[leafIndex]*[2]hashRatchet{},
	}
	return t, nil
}

// leafRatchets returns the ratchets of leaf, deriving them (and deleting the consumed node secrets on
// the way down) on first use. t.mu must be held.
func (t *secretTree) leafRatchets(leaf leafIndex) (*[2]hashRatchet, error) {
	if uint32(leaf) >= t.nLeaves {
		return nil, fmt.Errorf("%w: leaf %d in a tree of %d leaves", ErrLeafOutOfRange, leaf, t.nLeaves)
	}
	if r, ok := t.ratchets[leaf]; ok {
		return r, nil
	}
	target := leaf.node()
	// Find the lowest ancestor (or the leaf itself) whose secret is still held.
	x := target
	path := []nodeIndex{x}
	for {
		if _, ok := t.nodes[x]; ok {
			break
		}
		if x == rootNode(t.nLeaves) {
			// Every node on the path was consumed, which only happens if the leaf's ratchets were
			// initialised, handled above.
			return nil, fmt.Errorf("mls: internal error: secret tree has no secret above leaf %d", leaf)
		}
		x = x.parent()
		path = append(path, x)
	}
	// Walk down from x to the leaf, splitting each node into its two children and deleting it.
	for x != target {
		secret := t.nodes[x]
		l, r := x.left(), x.right()
		t.nodes[l] = t.s.expandWithLabel(secret, "tree", []byte("left"), t.s.nh)
		t.nodes[r] = t.s.expandWithLabel(secret, "tree", []byte("right"), t.s.nh)
		zero(secret)
		delete(t.nodes, x)
		if inSubtree(target, l) {
			x = l
		} else {
			x = r
		}
	}
	leafSecret := t.nodes[target]
	rs := &[2]hashRatchet{
		ratchetHandshake:   {secret: t.s.expandWithLabel(leafSecret, "handshake", nil, t.s.nh)},
		ratchetApplication: {secret: t.s.expandWithLabel(leafSecret, "application", nil, t.s.nh)},
	}
	zero(leafSecret)
	delete(t.nodes, target)
	t.ratchets[leaf] = rs
	return rs, nil
}

// keyAt derives the key and nonce for the ratchet's current generation without advancing.
func (t *secretTree) keyAt(r *hashRatchet) ratchetKey {
	return ratchetKey{
		key:   t.s.deriveTreeSecret(r.secret, "key", r.next, t.s.nk),
		nonce: t.s.deriveTreeSecret(r.secret, "nonce", r.next, t.s.nn),
	}
}

// advance replaces the ratchet secret by the next generation's one.
func (t *secretTree) advance(r *hashRatchet) {
	next := t.s.deriveTreeSecret(r.secret, "secret", r.next, t.s.nh)
	zero(r.secret)
	r.secret = next
	if r.next == ^uint32(0) {
		r.spent = true
		return
	}
	r.next++
}

// nextKey returns the key and nonce of the next generation of the leaf's ratchet, for sending, and
// deletes them from the tree.
func (t *secretTree) nextKey(leaf leafIndex, rt ratchetType) (key, nonce []byte, generation uint32, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return nil, nil, 0, err
	}
	r := &rs[rt]
	if r.spent {
		return nil, nil, 0, fmt.Errorf("%w: %s ratchet of leaf %d exhausted", ErrGenerationTooFar, rt, leaf)
	}
	g := r.next
	k := t.keyAt(r)
	t.advance(r)
	return k.key, k.nonce, g, nil
}

// keyForGeneration returns the key and nonce of the given generation of the leaf's ratchet, for
// receiving, and deletes them: asking twice for the same generation fails with ErrGenerationTooOld.
// Generations ahead of the ratchet are reached by ratcheting forward (at most limits.maxForward
// steps), retaining the skipped keys (at most limits.maxRetained).
func (t *secretTree) keyForGeneration(leaf leafIndex, rt ratchetType, generation uint32) (key, nonce []byte, gen uint32, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return nil, nil, 0, err
	}
	r := &rs[rt]
	if generation < r.next || r.spent {
		k, ok := r.retained[generation]
		if !ok {
			return nil, nil, 0, fmt.Errorf("%w: %s generation %d of leaf %d (ratchet at %d)", ErrGenerationTooOld, rt, generation, leaf, r.next)
		}
		delete(r.retained, generation)
		return k.key, k.nonce, generation, nil
	}
	if generation-r.next > t.limits.maxForward {
		return nil, nil, 0, fmt.Errorf("%w: %s generation %d of leaf %d, ratchet at %d, window %d",
			ErrGenerationTooFar, rt, generation, leaf, r.next, t.limits.maxForward)
	}
	for r.next < generation {
		if t.limits.maxRetained > 0 {
			t.retain(r, r.next, t.keyAt(r))
		}
		t.advance(r)
	}
	k := t.keyAt(r)
	t.advance(r)
	return k.key, k.nonce, generation, nil
}

// retain stores a skipped key, evicting the oldest retained keys beyond the limit.
func (t *secretTree) retain(r *hashRatchet, g uint32, k ratchetKey) {
	if r.retained == nil {
		r.retained = map[uint32]ratchetKey{}
	}
	r.retained[g] = k
	r.order = append(r.order, g)
	for len(r.retained) > t.limits.maxRetained && len(r.order) > 0 {
		old := r.order[0]
		r.order = r.order[1:]
		if ok := r.retained[old]; ok.key != nil {
			zero(ok.key)
			zero(ok.nonce)
			delete(r.retained, old)
		}
	}
	// Keep the order slice from growing without bound when retained keys are consumed out of order.
	if len(r.order) > 2*t.limits.maxRetained+16 {
		live := r.order[:0]
		for _, g := range r.order {
			if _, ok := r.retained[g]; ok {
				live = append(live, g)
			}
		}
		r.order = live
	}
}

// senderDataKeyNonce derives the key and nonce protecting a PrivateMessage's sender data (RFC 9420
// §6.3.2) from the epoch's sender_data_secret and the first Nh bytes of the content ciphertext (all
// of it when shorter).
func (s *suite) senderDataKeyNonce(senderDataSecret, ciphertext []byte) (key, nonce []byte) {
	sample := ciphertext
	if len(sample) > s.nh {
		sample = sample[:s.nh]
	}
	key = s.expandWithLabel(senderDataSecret, "key", sample, s.nk)
	nonce = s.expandWithLabel(senderDataSecret, "nonce", sample, s.nn)
	return key, nonce
}

// zero overwrites b. Go gives no guarantee that no other copy exists, but dropping the ones we hold
// limits how long secrets linger in memory.
func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
