// Node's `ws` client against a wsloop server. Started by tests/interop_node.rs:
//
//   node tests/interop/node/client.mjs ws://127.0.0.1:PORT
//
// The server runs the test handler of tests/support/interop.rs: it echoes
// every message, closes with `<code> <reason>` on the text command
// `close-me <code> <reason>`, and picks "chat.v2" when offered (else the
// first subprotocol offered). Every check prints `ok <name>` or
// `FAIL <name>: why`; the exit status is 1 if any check failed.

import { createRequire } from "node:module";
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

const failures = [];

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
  constructor(path, protocols) {
    this.events = [];
    this.waiters = [];
    this.ws = new WebSocket(base + path, protocols, {
      maxPayload: MAX_PAYLOAD,
      handshakeTimeout: STEP,
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
    });
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

async function echoChecks(c) {
  for (const [label, size] of SIZES) {
    const text = UNIT.repeat(size / 16);
    await check(`echo-text-${label}`, async () => {
      assert(Buffer.byteLength(text) === size, "bad text size");
      await c.send(text);
      const got = await c.message();
      assert(!got.isBinary, `expected text, got ${describe(got)}`);
      assert(got.data.toString("utf8") === text, `text of ${got.data.length} bytes differs`);
    });
    const data = pattern(size, size);
    await check(`echo-binary-${label}`, async () => {
      await c.send(data);
      const got = await c.message();
      assert(got.isBinary, `expected binary, got ${describe(got)}`);
      assert(Buffer.compare(got.data, data) === 0, `binary of ${got.data.length} bytes differs`);
    });
  }
}

async function fragmentedChecks(c) {
  // `fin: false` sends a frame with FIN clear; the frames after it are
  // CONTINUATION frames until one is sent with `fin: true`.
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
    await echoChecks(c);
    await fragmentedChecks(c);
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

  if (failures.length) {
    console.log(`node interop: ${failures.length} check(s) failed`);
    return 1;
  }
  console.log("node interop: every check passed");
  return 0;
}

process.exitCode = await main();
