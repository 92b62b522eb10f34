#!/usr/bin/env python3
"""Python's `websockets` (asyncio client) against a wsloop server.

Started by tests/interop_python.rs:

    python3 tests/interop/python/client.py ws://127.0.0.1:PORT

The server runs the test handler of tests/support/interop.rs: it echoes
every message, closes with `<code> <reason>` on the text command
`close-me <code> <reason>`, and picks "chat.v2" when offered (else the first
subprotocol offered). Every check prints `ok <name>` or `FAIL <name>: why`;
the exit status is 1 if any check failed.
"""

import asyncio
import random
import sys
import time

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

BASE = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else None
STEP = 30  # seconds any one check may take
MAX_SIZE = 32 << 20  # above the 16 MiB messages
SIZES = [("0B", 0), ("1KiB", 1 << 10), ("1MiB", 1 << 20), ("16MiB", 16 << 20)]
# 16 bytes of UTF-8 with 1-, 2-, 3- and 4-byte characters, so text of any
# multiple of 16 bytes splits characters across every frame and read boundary.
UNIT = "abcé✓🦀wxyz"
assert len(UNIT.encode()) == 16

failures = []


def report(name, error=None):
    if error is None:
        print(f"ok {name}", flush=True)
    else:
        failures.append(name)
        print(f"FAIL {name}: {error}", flush=True)


async def check(name, body):
    """Runs one check, bounded by STEP; any exception is its failure."""
    try:
        await asyncio.wait_for(body(), STEP)
    except Exception as e:  # noqa: BLE001: every failure is reported
        report(name, why(e))
    else:
        report(name)


def why(e):
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)) and not str(e):
        return f"timed out after {STEP} s"
    return f"{type(e).__name__}: {e}" if str(e) else repr(e)


def open_ws(path, **kwargs):
    return connect(
        BASE + path,
        max_size=MAX_SIZE,
        ping_interval=None,  # no keepalive pings of its own in the checks
        open_timeout=STEP,
        close_timeout=STEP,
        **kwargs,
    )


def describe(data):
    kind = "text" if isinstance(data, str) else "binary"
    return f"{kind} of {len(data)} items"


async def echo_checks(ws):
    for label, size in SIZES:
        text = UNIT * (size // len(UNIT.encode()))

        async def text_echo(text=text, size=size):
            assert len(text.encode()) == size
            await ws.send(text)
            got = await ws.recv()
            assert isinstance(got, str), f"expected text, got {describe(got)}"
            assert got == text, f"text of {len(got)} chars differs"

        await check(f"echo-text-{label}", text_echo)

        data = random.Random(size).randbytes(size)

        async def binary_echo(data=data):
            await ws.send(data)
            got = await ws.recv()
            assert isinstance(got, bytes), f"expected binary, got {describe(got)}"
            assert got == data, f"binary of {len(got)} bytes differs"

        await check(f"echo-binary-{label}", binary_echo)


async def fragmented_checks(ws):
    async def text():
        # An iterable is sent as one message in several frames: TEXT with
        # FIN clear, CONTINUATION frames, the last with FIN set.
        parts = ["fragmented ", "text from ", "python: ", "✓🦀"]
        await ws.send(parts)
        got = await ws.recv()
        assert got == "".join(parts), f"echo was {got!r}"

    async def binary():
        parts = [b"fragmented ", b"\x00\x01\x02", b"binary from python"]
        await ws.send(parts)
        got = await ws.recv()
        assert got == b"".join(parts), f"echo was {got!r}"

    await check("fragmented-text", text)
    await check("fragmented-binary", binary)


async def ping_check(ws):
    async def ping():
        pong = await ws.ping(b"ping from python")
        # Resolved only by a pong carrying the same payload.
        await pong
        await ws.send("after the ping")
        assert await ws.recv() == "after the ping"

    await check("ping-pong", ping)


async def main():
    print(f"peer websockets {websockets.__version__}", flush=True)

    async def main_connection():
        async with open_ws("/echo", subprotocols=["chat.v1", "chat.v2"]) as ws:
            await check("subprotocol-chosen", subprotocol_is(ws, "chat.v2"))
            await echo_checks(ws)
            await fragmented_checks(ws)
            await ping_check(ws)

            async def client_close():
                start = time.monotonic()
                await ws.close(4001, "bye from python")
                # The server echoes the code of the client's close frame...
                assert ws.close_code == 4001, f"server answered {ws.close_code}"
                # ...and then ends the TCP connection (RFC 6455 section 7.1.1)
                # instead of leaving the client to its close timeout.
                took = time.monotonic() - start
                assert took < 5, f"the server took {took:.1f} s to end the connection"

            await check("client-close", client_close)

    try:
        await main_connection()
    except Exception as e:  # noqa: BLE001
        report("main-connection", why(e))

    async def only_v1():
        async with open_ws("/subprotocol", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1", f"got {ws.subprotocol!r}"

    async def none_offered():
        async with open_ws("/subprotocol") as ws:
            assert ws.subprotocol is None, f"got {ws.subprotocol!r}"
            assert "Sec-WebSocket-Protocol" not in ws.response.headers

    await check("subprotocol-single", only_v1)
    await check("subprotocol-none", none_offered)

    async def server_close():
        async with open_ws("/server-close") as ws:
            await ws.send("close-me 4100 bye from wsloop")
            try:
                got = await ws.recv()
            except ConnectionClosed as e:
                assert e.rcvd is not None, "no close frame from the server"
                assert e.rcvd.code == 4100, f"code {e.rcvd.code}"
                assert e.rcvd.reason == "bye from wsloop", f"reason {e.rcvd.reason!r}"
                # The client answered the server's close with the same code.
                assert e.sent is not None and e.sent.code == 4100, f"sent {e.sent}"
            else:
                raise AssertionError(f"got a message instead of the close: {got!r}")

    await check("server-close", server_close)

    if failures:
        print(f"python interop: {len(failures)} check(s) failed", flush=True)
        return 1
    print("python interop: every check passed", flush=True)
    return 0


def subprotocol_is(ws, expected):
    async def body():
        assert ws.subprotocol == expected, f"got {ws.subprotocol!r}"

    return body


if __name__ == "__main__":
    if BASE is None:
        print("usage: client.py ws://HOST:PORT", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main()))
