// A ts-mls peer for core/mls interop tests and comparative benchmarks.
//
// Protocol: one JSON object per line on stdin, one JSON reply per line on stdout, in order.
// Request: {"id": n, "op": "...", ...}; reply: {"id": n, "ok": true, ...} or {"id": n, "ok": false, "error": "..."}.
// Binary values are lower-case hex strings holding TLS-serialized MLSMessage bytes (or raw bytes where noted).
//
// Ops:
//   new_client   {name, suite, identity}            -> {key_package}        a client with a fresh KeyPackage
//   key_package  {name}                              -> {key_package}        a further KeyPackage for the client
//   create_group {name, group_id, extensions?}       -> {epoch}   extensions: [{type, data}] (data hex)
//   add          {name, key_packages[], public}      -> {commit, welcome, epoch}   (Welcome carries the ratchet tree)
//   update       {name, public}                      -> {commit, epoch}      empty commit with a path
//   remove       {name, leaves[], public}            -> {commit, epoch}
//   join         {name, welcome}                     -> {epoch}
//   group_info   {name}                              -> {group_info}         with external_pub and the ratchet tree
//   encrypt      {name, plaintext}                   -> {message}            plaintext is raw hex
//   process      {name, message}                     -> {kind, plaintext?, epoch}
//   state        {name, label?, context?, length?}   -> {epoch, epoch_authenticator, members[], exporter?}
//   bench        {suite, n, batch, updates, messages} -> wall and CPU timings in ms (see benchGroup)
//   reinit       {name, group_id, suite, extensions?, public} -> {commit, epoch}   a commit of one ReInit proposal
//   reinit_group {name, new_name, key_packages[]}    -> {welcome, ratchet_tree, epoch}   new_name (a client of the
//                new suite) creates the group name's ReInit names (ts-mls reinitCreateNewGroup; the Welcome has no tree)
//   join_reinit  {name, new_name, welcome}           -> {epoch}   new_name joins the group that replaces name's
import * as mls from "ts-mls";
import { createGroupInfo } from "ts-mls/createCommit.js";
import { ratchetTreeEncoder } from "ts-mls/ratchetTree.js";
import { encode } from "ts-mls/codec/tlsEncoder.js";
import { createInterface } from "node:readline";

const clients = new Map(); // name -> {cs, impl, kp, kps: [], state}
const impls = new Map();

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));

async function implFor(suite) {
  if (!impls.has(suite)) {
    const name = Object.keys(mls.ciphersuites).find((k) => mls.ciphersuites[k] === suite);
    if (!name) throw new Error(`unknown cipher suite ${suite}`);
    impls.set(suite, await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(name)));
  }
  return impls.get(suite);
}

// extensionType names an RFC 9420 extension type as ts-mls does (it matches default types by name).
const extensionType = (t) => Object.keys(mls.defaultExtensionTypes).find((k) => mls.defaultExtensionTypes[k] === t) ?? t;

// opaqueV encodes b as an MLS opaque<V> (QUIC-style varint length, RFC 9420 §2.1.2).
function opaqueV(b) {
  const n = b.length;
  const head = n < 0x40 ? [n] : n < 0x4000 ? [0x40 | (n >> 8), n & 0xff] : [0x80 | (n >>> 24), (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  return new Uint8Array([...head, ...b]);
}

function client(name) {
  const c = clients.get(name);
  if (!c) throw new Error(`no client ${name}`);
  return c;
}

async function freshKeyPackage(c) {
  const kp = await mls.generateKeyPackage(
    { credentialType: "basic", identity: new TextEncoder().encode(c.identity) },
    mls.defaultCapabilities(), mls.defaultLifetime, [], c.impl);
  c.kps.push(kp);
  return hex(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage }));
}

function decode(h) {
  const d = mls.decodeMlsMessage(unhex(h), 0);
  if (!d) throw new Error("cannot decode MLSMessage");
  return d[0];
}

function members(state) {
  const out = [];
  state.ratchetTree.forEach((node, i) => {
    if (i % 2 === 0 && node && node.nodeType === "leaf") {
      out.push({ leaf: i / 2, identity: new TextDecoder().decode(node.leaf.credential.identity) });
    }
  });
  return out;
}

async function commit(c, proposals, pub) {
  const res = await mls.createCommit({ state: c.state, cipherSuite: c.impl },
    { extraProposals: proposals, ratchetTreeExtension: true, wireAsPublicMessage: !!pub });
  c.state = res.newState;
  const out = { commit: hex(mls.encodeMlsMessage(res.commit)), epoch: Number(c.state.groupContext.epoch) };
  if (res.welcome) out.welcome = hex(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome }));
  return out;
}

const ops = {
  async new_client({ name, suite, identity }) {
    const c = { impl: await implFor(suite), identity: identity ?? name, kps: [], state: null };
    clients.set(name, c);
    return { key_package: await freshKeyPackage(c) };
  },
  async key_package({ name }) {
    return { key_package: await freshKeyPackage(client(name)) };
  },
  async create_group({ name, group_id, extensions }) {
    const c = client(name);
    const kp = c.kps.shift();
    const exts = (extensions ?? []).map((e) => ({ extensionType: extensionType(e.type), extensionData: unhex(e.data) }));
    c.state = await mls.createGroup(unhex(group_id), kp.publicPackage, kp.privatePackage, exts, c.impl);
    return { epoch: Number(c.state.groupContext.epoch) };
  },
  async add({ name, key_packages, public: pub }) {
    const c = client(name);
    const proposals = key_packages.map((k) => ({ proposalType: "add", add: { keyPackage: decode(k).keyPackage } }));
    return commit(c, proposals, pub);
  },
  async update({ name, public: pub }) {
    return commit(client(name), [], pub);
  },
  async remove({ name, leaves, public: pub }) {
    return commit(client(name), leaves.map((l) => ({ proposalType: "remove", remove: { removed: l } })), pub);
  },
  async join({ name, welcome }) {
    const c = client(name);
    const w = decode(welcome).welcome;
    let lastErr;
    for (let i = 0; i < c.kps.length; i++) { // the Welcome names one of our KeyPackages; try each
      try {
        c.state = await mls.joinGroup(w, c.kps[i].publicPackage, c.kps[i].privatePackage, mls.emptyPskIndex, c.impl);
        c.kps.splice(i, 1);
        return { epoch: Number(c.state.groupContext.epoch) };
      } catch (e) { lastErr = e; }
    }
    throw lastErr ?? new Error("no key package");
  },
  // ts-mls 1.6.4 writes the external_pub extension as the bare key; RFC 9420 §12.4.3.2 wraps it
  // in opaque<V> (fixed in ts-mls after 1.6.4), so the peer builds the extension itself.
  async group_info({ name }) {
    const c = client(name);
    const kp = await c.impl.hpke.deriveKeyPair(c.state.keySchedule.externalSecret);
    const pub = await c.impl.hpke.exportPublicKey(kp.publicKey);
    const gi = await createGroupInfo(c.state.groupContext, c.state.confirmationTag, c.state, [
      { extensionType: "external_pub", extensionData: opaqueV(pub) },
      { extensionType: "ratchet_tree", extensionData: encode(ratchetTreeEncoder)(c.state.ratchetTree) },
    ], c.impl);
    return { group_info: hex(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi })) };
  },
  async encrypt({ name, plaintext }) {
    const c = client(name);
    const res = await mls.createApplicationMessage(c.state, unhex(plaintext), c.impl);
    c.state = res.newState;
    return { message: hex(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: res.privateMessage })) };
  },
  async process({ name, message }) {
    const c = client(name);
    const res = await mls.processMessage(decode(message), c.state, mls.emptyPskIndex, mls.acceptAll, c.impl);
    c.state = res.newState;
    const out = { kind: res.kind, epoch: Number(c.state.groupContext.epoch) };
    if (res.kind === "applicationMessage") out.plaintext = hex(res.message);
    return out;
  },
  async state({ name, label, context, length }) {
    const c = client(name);
    const out = {
      epoch: Number(c.state.groupContext.epoch),
      epoch_authenticator: hex(c.state.keySchedule.epochAuthenticator),
      members: members(c.state),
    };
    if (label !== undefined) {
      out.exporter = hex(await mls.mlsExporter(c.state.keySchedule.exporterSecret, label, unhex(context ?? ""), length ?? 32, c.impl));
    }
    return out;
  },
  bench: benchGroup,
  async reinit({ name, group_id, suite, extensions, public: pub }) {
    const exts = (extensions ?? []).map((e) => ({ extensionType: extensionType(e.type), extensionData: unhex(e.data) }));
    const reinit = { groupId: unhex(group_id), version: "mls10", cipherSuite: suiteName(suite), extensions: exts };
    return commit(client(name), [{ proposalType: "reinit", reinit }], pub);
  },
  async reinit_group({ name, new_name, key_packages }) {
    const old = client(name), c = client(new_name);
    const ri = old.state.groupActiveState.reinit;
    if (!ri) throw new Error(`${name} is not suspended pending a ReInit`);
    const kp = c.kps.shift();
    const members = key_packages.map((k) => decode(k).keyPackage);
    const res = await mls.reinitCreateNewGroup(old.state, kp.publicPackage, kp.privatePackage, members, ri.groupId, ri.cipherSuite, ri.extensions);
    c.state = res.newState;
    return {
      welcome: hex(mls.encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome })),
      ratchet_tree: hex(encode(ratchetTreeEncoder)(c.state.ratchetTree)),
      epoch: Number(c.state.groupContext.epoch),
    };
  },
  async join_reinit({ name, new_name, welcome }) {
    const old = client(name), c = client(new_name);
    const w = decode(welcome).welcome;
    let lastErr;
    for (let i = 0; i < c.kps.length; i++) {
      try {
        c.state = await mls.joinGroupFromReinit(old.state, w, c.kps[i].publicPackage, c.kps[i].privatePackage, undefined);
        c.kps.splice(i, 1);
        return { epoch: Number(c.state.groupContext.epoch) };
      } catch (e) { lastErr = e; }
    }
    throw lastErr ?? new Error("no key package");
  },
};

function suiteName(suite) {
  const n = Object.keys(mls.ciphersuites).find((k) => mls.ciphersuites[k] === suite);
  if (!n) throw new Error(`unknown cipher suite ${suite}`);
  return n;
}

// benchGroup measures ts-mls on the operations core/mls benchmarks, in one process, so the Go
// benchmark can report a ratio: a group of n members built by Add commits in batches (blank parents
// off the creator's path), then update commits created by the creator and processed by the last
// member, a join by Welcome, and `messages` application messages encrypted by one and decrypted by
// another member.
async function benchGroup({ suite, n, batch, updates, messages }) {
  const impl = await implFor(suite);
  const mk = async (id) => mls.generateKeyPackage({ credentialType: "basic", identity: new TextEncoder().encode(id) },
    mls.defaultCapabilities(), mls.defaultLifetime, [], impl);
  const creatorKp = await mk("m0");
  let creator = await mls.createGroup(new TextEncoder().encode("bench"), creatorKp.publicPackage, creatorKp.privatePackage, [], impl);
  let lastWelcome, lastKp;
  for (let added = 1; added < n;) {
    const k = Math.min(batch, n - added);
    const kps = [];
    for (let i = 0; i < k; i++) kps.push(await mk(`m${added + i}`));
    const res = await mls.createCommit({ state: creator, cipherSuite: impl },
      { extraProposals: kps.map((kp) => ({ proposalType: "add", add: { keyPackage: kp.publicPackage } })), ratchetTreeExtension: true });
    creator = res.newState;
    lastWelcome = res.welcome; lastKp = kps[kps.length - 1];
    added += k;
  }
  // Each measurement takes wall time (performance.now) and the node process's CPU time
  // (process.cpuUsage, user + system), so the Go benchmark can compare CPU to CPU on a loaded machine.
  const cpuMs = (c) => (c.user + c.system) / 1000;
  let t0 = performance.now(), c0 = process.cpuUsage();
  let member = await mls.joinGroup(lastWelcome, lastKp.publicPackage, lastKp.privatePackage, mls.emptyPskIndex, impl);
  const join = performance.now() - t0, joinCpu = cpuMs(process.cpuUsage(c0));
  const create = [], proc = [], createCpu = [], procCpu = [];
  for (let u = 0; u < updates; u++) {
    let t = performance.now(), c = process.cpuUsage();
    const res = await mls.createCommit({ state: creator, cipherSuite: impl }, {});
    create.push(performance.now() - t); createCpu.push(cpuMs(process.cpuUsage(c)));
    creator = res.newState;
    t = performance.now(); c = process.cpuUsage();
    member = (await mls.processMessage(res.commit, member, mls.emptyPskIndex, mls.acceptAll, impl)).newState;
    proc.push(performance.now() - t); procCpu.push(cpuMs(process.cpuUsage(c)));
  }
  const payload = new Uint8Array(100);
  let enc = 0, dec = 0, encCpu = 0, decCpu = 0;
  for (let i = 0; i < messages; i++) {
    let t = performance.now(), c = process.cpuUsage();
    const res = await mls.createApplicationMessage(creator, payload, impl);
    enc += performance.now() - t; encCpu += cpuMs(process.cpuUsage(c));
    creator = res.newState;
    t = performance.now(); c = process.cpuUsage();
    const msg = { version: "mls10", wireformat: "mls_private_message", privateMessage: res.privateMessage };
    member = (await mls.processMessage(msg, member, mls.emptyPskIndex, mls.acceptAll, impl)).newState;
    dec += performance.now() - t; decCpu += cpuMs(process.cpuUsage(c));
  }
  const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.floor(s.length / 2)] : 0; };
  return { join_ms: join, update_create_ms: median(create), update_process_ms: median(proc), app_encrypt_ms: enc, app_decrypt_ms: dec,
    join_cpu_ms: joinCpu, update_create_cpu_ms: median(createCpu), update_process_cpu_ms: median(procCpu),
    app_encrypt_cpu_ms: encCpu, app_decrypt_cpu_ms: decCpu };
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
let queue = Promise.resolve();
rl.on("line", (line) => {
  queue = queue.then(async () => {
    let req;
    try {
      req = JSON.parse(line);
      const fn = ops[req.op];
      if (!fn) throw new Error(`unknown op ${req.op}`);
      const out = await fn(req);
      process.stdout.write(JSON.stringify({ id: req.id, ok: true, ...out }) + "\n");
    } catch (e) {
      process.stdout.write(JSON.stringify({ id: req?.id ?? null, ok: false, error: String(e?.stack ?? e) }) + "\n");
    }
  });
});
rl.on("close", () => { queue.then(() => process.exit(0)); });
