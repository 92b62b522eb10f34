// Node's `ws` client against a wsloop server. Started by tests/interop_node.rs:
//
//   node tests/interop/node/client.mjs ws://127.0.0.1:PORT
//
// The server runs the test handler of tests/support/interop.rs: it echoes
// every message, closes with `<code> <reason>` on the text command
// `close-me <code> <reason>`, and picks "chat.v2" when offered (else the
// first subprotocol offered). It accepts permessage-deflate (RFC 7692) with
// wsloop's defaults: messages of 64 bytes and more are sent compressed.
// Every check prints `ok <name>` or `FAIL <name>: why`; the exit status is 1
// if any check failed.
//
// Connections, in order: /echo (perMessageDeflate with threshold 0, so ws
// compresses everything it sends; every echo check), /subprotocol twice,
// /server-close, /no-context-takeover (both no_context_takeover
// parameters), /window-bits (both windows 10 bits), /uncompressed
// (perMessageDeflate: false).

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import WebSocket from "ws";

const base = process.argv[2]?.replace(/\/$/, "");
if (!base) {
  console.error("usage: node client.mjs ws://HOST:PORT");
  process.exit(2);
}
const STEP = 30_000; // ms any one check may take
const MAX_PAYLOAD = 32 << 20; // above the 16 MiB messages
const SIZES = [
  ["0B", 0],
  ["1KiB", 1 << 10],
  ["1MiB", 1 << 20],
  ["16MiB", 16 << 20],
];
// 16 bytes of UTF-8 with 1-, 2-, 3- and 4-byte characters, so text of any
// multiple of 16 bytes splits characters across every frame and read boundary.
const UNIT = "abcé✓🦀wxyz";
if (Buffer.byteLength(UNIT) !== 16) throw new Error("UNIT must be 16 bytes");
// wsloop's default compress_threshold: shorter messages are sent as they are.
const THRESHOLD = 64;
const DEFLATE = "permessage-deflate";
// ws compresses what it sends from this many bytes on: everything.
const COMPRESS_ALL = { threshold: 0 };

const failures = [];
/** Every client opened, ended at exit whatever happened to it. */
const clients = [];

function report(name, error) {
  if (error === undefined) {
    console.log(`ok ${name}`);
  } else {
    failures.push(name);
    console.log(`FAIL ${name}: ${error}`);
  }
}

function assert(cond, why) {
  if (!cond) throw new Error(why);
}

/** Runs one check, bounded by STEP; any exception is its failure. */
async function check(name, body) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${STEP / 1000} s`)), STEP);
  });
  try {
    await Promise.race([body(), timeout]);
    report(name);
  } catch (e) {
    report(name, e?.message ?? String(e));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A client with a queue of what it received: messages, pongs and the close,
 * in order, so a check can wait for the next one.
 */
class Client {
  constructor(path, protocols, perMessageDeflate = COMPRESS_ALL) {
    clients.push(this);
    this.events = [];
    this.waiters = [];
    /** Sizes of the compressed (RSV1) frames received, as on the wire. */
    this.compressed = [];
    this.ws = new WebSocket(base + path, protocols, {
      maxPayload: MAX_PAYLOAD,
      handshakeTimeout: STEP,
      perMessageDeflate,
      // Over wss:// the only root trusted is the CA made for the test run.
      ...(base.startsWith("wss://") ? { ca: readFileSync(process.env.WSLOOP_TEST_CA) } : {}),
    });
    this.ws.on("upgrade", (res) => {
      this.agreed = res.headers["sec-websocket-extensions"];
    });
    this.ws.on("message", (data, isBinary) =>
      this.push({ type: "message", data, isBinary }),
    );
    this.ws.on("pong", (data) => this.push({ type: "pong", data }));
    this.ws.on("close", (code, reason) =>
      this.push({ type: "close", code, reason: reason.toString() }),
    );
    this.ws.on("error", (error) => this.push({ type: "error", error }));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("error", reject);
      this.ws.once("unexpected-response", (_req, res) =>
        reject(new Error(`HTTP ${res.statusCode} instead of 101`)),
      );
    }).then(() => this.recordCompressed());
  }

  /**
   * The agreed extension's state in ws (8.23.0, pinned): its `params` and
   * its `decompress`, which ws's receiver calls once per compressed frame.
   */
  deflate() {
    return this.ws._extensions[DEFLATE];
  }

  /** Wraps `decompress` to record each compressed frame's size. */
  recordCompressed() {
    const deflate = this.deflate();
    if (!deflate) return;
    const decompress = deflate.decompress.bind(deflate);
    deflate.decompress = (data, fin, cb) => {
      this.compressed.push(data.length);
      return decompress(data, fin, cb);
    };
  }

  mark() {
    return this.compressed.length;
  }

  /** The compressed frames' sizes since `mark`. */
  since(mark) {
    return this.compressed.slice(mark);
  }

  /** The Sec-WebSocket-Extensions answer's parts, or undefined. */
  agreedParts() {
    return this.agreed?.split(";").map((p) => p.trim());
  }

  push(event) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(event);
    else this.events.push(event);
  }

  next() {
    const event = this.events.shift();
    if (event) return Promise.resolve(event);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The next event, which must be a message. */
  async message() {
    const event = await this.next();
    if (event.type === "message") return event;
    if (event.type === "error") throw event.error;
    throw new Error(`expected a message, got ${describe(event)}`);
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) =>
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve())),
    );
  }
}

function describe(event) {
  switch (event.type) {
    case "message":
      return `${event.isBinary ? "binary" : "text"} message of ${event.data.length} bytes`;
    case "close":
      return `close ${event.code} ${JSON.stringify(event.reason)}`;
    case "error":
      return `error ${event.error.message}`;
    default:
      return event.type;
  }
}

/** Deterministic pseudo-random bytes (xorshift32). */
function pattern(len, seed) {
  const out = Buffer.alloc(len);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Asserts how many compressed frames arrived since `mark` for `size` bytes. */
function compressedEcho(c, mark, size) {
  const got = c.since(mark).length;
  const want = size >= THRESHOLD ? 1 : 0;
  assert(got === want, `${got} compressed frames for ${size} bytes, expected ${want}`);
}

async function echoChecks(c) {
  // Text and binary of every size, echoed. The text of THRESHOLD bytes and
  // more comes back compressed (in one compressed frame). The binary is
  // noise, which deflate cannot shrink, so the server may send it either
  // way: what matters is that it comes back whole (and it went compressed,
  // with threshold 0).
  for (const [label, size] of SIZES) {
    const text = UNIT.repeat(size / 16);
    await check(`echo-text-${label}`, async () => {
      assert(Buffer.byteLength(text) === size, "bad text size");
      const mark = c.mark();
      await c.send(text);
      const got = await c.message();
      assert(!got.isBinary, `expected text, got ${describe(got)}`);
      assert(got.data.toString("utf8") === text, `text of ${got.data.length} bytes differs`);
      compressedEcho(c, mark, size);
    });
    const data = pattern(size, size);
    await check(`echo-binary-${label}`, async () => {
      const mark = c.mark();
      await c.send(data);
      const got = await c.message();
      assert(got.isBinary, `expected binary, got ${describe(got)}`);
      assert(Buffer.compare(got.data, data) === 0, `binary of ${got.data.length} bytes differs`);
      if (size < THRESHOLD) compressedEcho(c, mark, size);
    });
  }
}

async function fragmentedChecks(c) {
  // `fin: false` sends a frame with FIN clear; the frames after it are
  // CONTINUATION frames until one is sent with `fin: true` (each frame
  // compressed, RSV1 on the first).
  await check("fragmented-text", async () => {
    const parts = ["fragmented ", "text from ", "node: ", "✓🦀"];
    for (const [i, part] of parts.entries()) {
      await c.send(part, { fin: i === parts.length - 1 });
    }
    const got = await c.message();
    assert(!got.isBinary, `expected text, got ${describe(got)}`);
    assert(got.data.toString() === parts.join(""), `echo was ${JSON.stringify(got.data.toString())}`);
  });
  await check("fragmented-binary", async () => {
    const parts = [Buffer.from("fragmented "), Buffer.from([0, 1, 2]), Buffer.from("binary from node")];
    for (const [i, part] of parts.entries()) {
      await c.send(part, { binary: true, fin: i === parts.length - 1 });
    }
    const got = await c.message();
    assert(got.isBinary, `expected binary, got ${describe(got)}`);
    assert(Buffer.compare(got.data, Buffer.concat(parts)) === 0, `echo was ${got.data.toString("hex")}`);
  });
  await fragmented64KiBChecks(c, "");
}

/** Every byte value, `times` times over. */
function ramp(times) {
  return Buffer.concat(Array.from({ length: times }, () => Buffer.from(Array.from({ length: 256 }, (_, i) => i))));
}

/** 64 KiB in four compressed fragments each way; the echo comes back compressed. */
async function fragmented64KiBChecks(c, prefix) {
  await check(`${prefix}fragmented-text-64KiB`, async () => {
    const parts = Array(4).fill(UNIT.repeat(1024));
    const mark = c.mark();
    for (const [i, part] of parts.entries()) {
      await c.send(part, { fin: i === parts.length - 1 });
    }
    const got = await c.message();
    assert(!got.isBinary && got.data.toString() === parts.join(""), `echo of ${describe(got)} differs`);
    assert(c.since(mark).length > 0, "the echo was not compressed");
  });
  await check(`${prefix}fragmented-binary-64KiB`, async () => {
    const parts = Array(4).fill(ramp(64));
    const mark = c.mark();
    for (const [i, part] of parts.entries()) {
      await c.send(part, { binary: true, fin: i === parts.length - 1 });
    }
    const got = await c.message();
    assert(got.isBinary && Buffer.compare(got.data, Buffer.concat(parts)) === 0, `echo of ${describe(got)} differs`);
    assert(c.since(mark).length > 0, "the echo was not compressed");
  });
}

/**
 * `size` bytes of noise `times` over, then as many zeros: the zeros make
 * the message worth compressing however the noise fares (wsloop sends a
 * message as it is when deflate does not make it smaller), and the repeats
 * show how far back the server's compressor can see.
 */
function noiseThenZeros(seed, size, times = 1) {
  const m = Buffer.concat(Array(times).fill(pattern(size, seed)));
  return Buffer.concat([m, Buffer.alloc(m.length)]);
}

/** Echoes `data` twice; returns the two echoes' compressed sizes. */
async function repeatEcho(c, data) {
  const mark = c.mark();
  for (let i = 0; i < 2; i++) {
    await c.send(data);
    const got = await c.message();
    assert(Buffer.compare(got.data, data) === 0, `echo of ${describe(got)} differs`);
  }
  const sizes = c.since(mark);
  assert(sizes.length === 2, `compressed frames: ${sizes}`);
  return sizes;
}

async function contextTakeoverCheck(c) {
  await check("context-takeover", async () => {
    // 1 KiB of noise does not compress, but the second time the server's
    // window (4 KiB by default) still holds the first.
    const [first, second] = await repeatEcho(c, noiseThenZeros(1, 1 << 10));
    assert(first > 1 << 10, `noise compressed to ${first} bytes`);
    assert(second * 20 < first, `${second} bytes the second time, ${first} the first`);
  });
}

/** Text and binary of `size` bytes echoed, both compressed. */
async function echoBoth(c, size) {
  for (const message of [UNIT.repeat(size / 16), ramp(size / 256)]) {
    const mark = c.mark();
    await c.send(message);
    const got = await c.message();
    const same =
      typeof message === "string" ? got.data.toString() === message : Buffer.compare(got.data, message) === 0;
    assert(same, `echo of ${describe(got)} differs`);
    assert(c.since(mark).length === 1, "the echo was not compressed");
  }
}

/**
 * A check that the connection agreed `want` (the answer's parts); returns
 * whether it did.
 */
async function agreedCheck(name, c, want) {
  let ok = false;
  await check(name, async () => {
    const got = c.agreedParts();
    assert(JSON.stringify(got) === JSON.stringify(want), `the server answered ${JSON.stringify(c.agreed)}`);
    assert(c.ws.extensions === DEFLATE, `ws.extensions is ${JSON.stringify(c.ws.extensions)}`);
    ok = true;
  });
  return ok;
}

async function noContextTakeoverChecks() {
  // Both no_context_takeover parameters: each side resets its compressor
  // after every message, so ws inflates each of the server's messages
  // from a reset state.
  try {
    const c = new Client("/no-context-takeover", undefined, {
      ...COMPRESS_ALL,
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
    });
    await c.opened;
    const want = [
      DEFLATE,
      "server_no_context_takeover",
      "client_no_context_takeover",
      "server_max_window_bits=12",
      "client_max_window_bits=12",
    ];
    if (!(await agreedCheck("no-context-takeover-agreed", c, want))) return;
    await check("no-context-takeover-echo", async () => {
      const params = c.deflate().params;
      assert(params.server_no_context_takeover && params.client_no_context_takeover, JSON.stringify(params));
      await echoBoth(c, 1 << 20);
      // The same noise twice compresses no better the second time.
      const [first, second] = await repeatEcho(c, noiseThenZeros(2, 8 << 10));
      assert(Math.min(first, second) > 8 << 10, `${first} and ${second} bytes`);
    });
    await fragmented64KiBChecks(c, "no-context-takeover-");
    c.ws.close(1000);
    await closed(c);
  } catch (e) {
    report("no-context-takeover-connection", e?.message ?? String(e));
  }
}

async function windowBitsChecks() {
  // Both windows limited to 10 bits (1 KiB).
  try {
    const c = new Client("/window-bits", undefined, {
      ...COMPRESS_ALL,
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 10,
    });
    await c.opened;
    const want = [DEFLATE, "server_max_window_bits=10", "client_max_window_bits=10"];
    if (!(await agreedCheck("window-bits-agreed", c, want))) return;
    await check("window-bits-echo", async () => {
      await echoBoth(c, 1 << 20);
      // A 2 KiB block of noise said twice: the repeat is out of a 1 KiB
      // window's reach, so both cost their size.
      const twice = noiseThenZeros(3, 2 << 10, 2);
      const mark = c.mark();
      await c.send(twice);
      const got = await c.message();
      assert(Buffer.compare(got.data, twice) === 0, `echo of ${describe(got)} differs`);
      const sizes = c.since(mark);
      assert(sizes.length === 1 && sizes[0] > ((4 << 10) * 95) / 100, `compressed to ${sizes}`);
    });
    c.ws.close(1000);
    await closed(c);
  } catch (e) {
    report("window-bits-connection", e?.message ?? String(e));
  }
}

async function uncompressedChecks() {
  // perMessageDeflate: false: nothing offered, nothing agreed, plain frames.
  try {
    const c = new Client("/uncompressed", undefined, false);
    await c.opened;
    await check("uncompressed-agreed-none", async () => {
      assert(c.agreed === undefined, `the server answered ${JSON.stringify(c.agreed)}`);
      assert(c.ws.extensions === "", `ws.extensions is ${JSON.stringify(c.ws.extensions)}`);
    });
    await check("uncompressed-echo", async () => {
      for (const message of ["z".repeat(1024), Buffer.alloc(1024)]) {
        await c.send(message);
        const got = await c.message();
        const same =
          typeof message === "string"
            ? !got.isBinary && got.data.toString() === message
            : got.isBinary && Buffer.compare(got.data, message) === 0;
        assert(same, `echo of ${describe(got)} differs`);
      }
    });
    c.ws.close(1000);
    await closed(c);
  } catch (e) {
    report("uncompressed-connection", e?.message ?? String(e));
  }
}

async function pingCheck(c) {
  await check("ping-pong", async () => {
    c.ws.ping(Buffer.from("ping from node"));
    const pong = await c.next();
    assert(pong.type === "pong", `expected a pong, got ${describe(pong)}`);
    assert(pong.data.toString() === "ping from node", `pong carried ${JSON.stringify(pong.data.toString())}`);
    await c.send("after the ping");
    const got = await c.message();
    assert(got.data.toString() === "after the ping", `got ${describe(got)}`);
  });
}

async function closed(c) {
  const event = await c.next();
  assert(event.type === "close", `expected the close, got ${describe(event)}`);
  return event;
}

async function main() {
  const require = createRequire(import.meta.url);
  console.log(`peer ws ${require("ws/package.json").version}`);

  try {
    const c = new Client("/echo", ["chat.v1", "chat.v2"]);
    await c.opened;
    await check("subprotocol-chosen", async () => {
      assert(c.ws.protocol === "chat.v2", `got ${JSON.stringify(c.ws.protocol)}`);
    });
    // The default windows: 12 bits each way (4 KiB kept per client).
    await agreedCheck("deflate-agreed", c, [DEFLATE, "server_max_window_bits=12", "client_max_window_bits=12"]);
    await echoChecks(c);
    await fragmentedChecks(c);
    await contextTakeoverCheck(c);
    await pingCheck(c);
    await check("client-close", async () => {
      const start = Date.now();
      c.ws.close(4002, "bye from node");
      // ws emits 'close' once the TCP connection is gone: the server echoed
      // the close frame's code and then ended the connection itself.
      const event = await closed(c);
      assert(event.code === 4002, `server answered ${event.code}`);
      const took = (Date.now() - start) / 1000;
      assert(took < 5, `the server took ${took.toFixed(1)} s to end the connection`);
    });
  } catch (e) {
    report("main-connection", e?.message ?? String(e));
  }

  await check("subprotocol-single", async () => {
    const c = new Client("/subprotocol", ["chat.v1"]);
    await c.opened;
    assert(c.ws.protocol === "chat.v1", `got ${JSON.stringify(c.ws.protocol)}`);
    c.ws.close(1000);
    await closed(c);
  });
  await check("subprotocol-none", async () => {
    const c = new Client("/subprotocol");
    await c.opened;
    assert(c.ws.protocol === "", `got ${JSON.stringify(c.ws.protocol)}`);
    c.ws.close(1000);
    await closed(c);
  });

  await check("server-close", async () => {
    const c = new Client("/server-close");
    await c.opened;
    await c.send("close-me 4100 bye from wsloop");
    const event = await closed(c);
    assert(event.code === 4100, `code ${event.code}`);
    assert(event.reason === "bye from wsloop", `reason ${JSON.stringify(event.reason)}`);
  });

  await noContextTakeoverChecks();
  await windowBitsChecks();
  await uncompressedChecks();

  if (failures.length) {
    console.log(`node interop: ${failures.length} check(s) failed`);
    return 1;
  }
  console.log("node interop: every check passed");
  return 0;
}

try {
  process.exitCode = await main();
} finally {
  // A check that failed half-way may have left its connection open, which
  // would keep node running.
  for (const c of clients) {
    if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate();
  }
}
