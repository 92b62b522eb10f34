// wsloop's /chat over Redis, written the way a Node service does it: the
// `ws` server with `ioredis` pub/sub fan-out (the versions
// bench/peers/node/package.json pins; `cd bench/peers/node && npm ci`).
// The peer of scripts/bench-redis.
//
//   node bench/peers/node-redis-chat.mjs --listen 127.0.0.1:9001 --redis redis://127.0.0.1:6379
//
// The same behaviour as `wsloop --redis` on /chat, and the same shape:
// - `?name=` names a client (else guestN); `<name> joined` goes to the
//   others on open, `<name> left` on close, every text message goes to
//   every /chat client as `<name>: <text>`, the sender included;
// - a message reaches this process's clients at once and goes to Redis
//   once (PUBLISH on `wsloop:chat`), stamped with this process's id; what
//   comes back from Redis with another id goes to this process's clients,
//   its own is left out (as Socket.IO's Redis adapter does);
// - the channel is subscribed while this process has a /chat client;
// - no compression (perMessageDeflate off), TCP_NODELAY (ws's default).
// ioredis pipelines what is sent in one tick of the event loop (its
// default `enableAutoPipelining` is off: commands go out as they come,
// which is ioredis's default behaviour and what applications get).

import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

const require = createRequire(new URL('./node/package.json', import.meta.url));
const { WebSocketServer, WebSocket } = require('ws');
const Redis = require('ioredis');

let listen = '127.0.0.1:9001';
let redisUrl = 'redis://127.0.0.1:6379';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const value = () => {
    if (i + 1 >= args.length) throw new Error(`${args[i]} needs a value`);
    return args[++i];
  };
  switch (args[i]) {
    case '--listen': listen = value(); break;
    case '--redis': redisUrl = value(); break;
    default: throw new Error(`unknown argument ${args[i]}`);
  }
}
const colon = listen.lastIndexOf(':');
const host = listen.slice(0, colon);
const port = Number(listen.slice(colon + 1));

const CHANNEL = 'wsloop:chat';
// This process's id, first in every payload it publishes: 8 bytes, then
// the text (the same envelope idea as wsloop's, minus its kind byte).
const ORIGIN = randomBytes(8);
const pub = new Redis(redisUrl, { lazyConnect: false });
const sub = new Redis(redisUrl, { lazyConnect: false });
let subscribed = false;

const chat = new Set();
let guests = 0;

function local(text) {
  for (const c of chat) {
    if (c.readyState === WebSocket.OPEN) c.send(text);
  }
}

function publish(text) {
  local(text);
  pub.publish(CHANNEL, Buffer.concat([ORIGIN, Buffer.from(text)]));
}

sub.on('messageBuffer', (channel, payload) => {
  if (payload.length >= 8 && payload.subarray(0, 8).equals(ORIGIN)) return;
  local(payload.subarray(8).toString());
});

function hold() {
  if (!subscribed && chat.size > 0) {
    subscribed = true;
    sub.subscribe(CHANNEL);
  } else if (subscribed && chat.size === 0) {
    subscribed = false;
    sub.unsubscribe(CHANNEL);
  }
}

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 16 << 20 });
wss.on('connection', (ws, req) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname !== '/chat') {
    ws.close(1008, 'only /chat here');
    return;
  }
  const name = url.searchParams.get('name') || `guest${++guests}`;
  publish(`${name} joined`);
  ws.send(`welcome ${name}: ${chat.size} others here, your messages go to everyone`);
  chat.add(ws);
  hold();
  ws.on('message', (data, isBinary) => {
    if (!isBinary) publish(`${name}: ${data.toString()}`);
  });
  ws.on('close', () => {
    chat.delete(ws);
    hold();
    publish(`${name} left`);
  });
});
wss.on('listening', () => console.log(`listening on ws://${host}:${port} (redis ${redisUrl})`));

function stop() {
  wss.close();
  for (const c of wss.clients) c.terminate();
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
