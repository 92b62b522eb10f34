// An echo server on Node's `ws` (the version tests/interop/node pins and
// installs), for the compression rows of scripts/bench (--compression).
//
//   node bench/peers/node-ws-echo.mjs --listen 127.0.0.1:9001 [--deflate on|off|no-context-takeover]
//
// Every message comes back as it came (text or binary) on any path. With
// `--deflate on` (the default) permessage-deflate is accepted on the
// client's terms (context takeover unless the client asks otherwise);
// `no-context-takeover` also asks for none either way; `off` declines it.
// Set as wsloop's defaults so the two do the same work: compression level 1
// (ws would use zlib's 6), and messages of 64 bytes or more compressed (ws
// would compress only from 1 KiB). The rest is ws's default: TCP_NODELAY
// (ws sets it on every socket), 10 concurrent zlib jobs, 100 MiB messages.

import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/interop/node/package.json', import.meta.url));
const { WebSocketServer } = require('ws');

let listen = '127.0.0.1:9001';
let deflate = 'on';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const value = () => {
    if (i + 1 >= args.length) throw new Error(`${args[i]} needs a value`);
    return args[++i];
  };
  switch (args[i]) {
    case '--listen': listen = value(); break;
    case '--deflate': deflate = value(); break;
    default: throw new Error(`unknown argument ${args[i]}`);
  }
}
if (!['on', 'off', 'no-context-takeover'].includes(deflate)) {
  throw new Error(`--deflate ${deflate}: expected on, off or no-context-takeover`);
}
const colon = listen.lastIndexOf(':');
const host = listen.slice(0, colon);
const port = Number(listen.slice(colon + 1));
const noContext = deflate === 'no-context-takeover';

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: deflate === 'off' ? false : {
    threshold: 64,
    zlibDeflateOptions: { level: 1 },
    serverNoContextTakeover: noContext,
    clientNoContextTakeover: noContext,
  },
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => {
  const a = wss.address();
  console.error(`node ws echo server on ws://${a.address}:${a.port} (permessage-deflate ${deflate})`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
