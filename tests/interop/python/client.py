#!/usr/bin/env python3
"""Python's `websockets` (asyncio client) against a wsloop server.

Started by tests/interop_python.rs:

    python3 tests/interop/python/client.py ws://127.0.0.1:PORT

The server runs the test handler of tests/support/interop.rs: it echoes
every message, closes with `<code> <reason>` on the text command
`close-me <code> <reason>`, and picks "chat.v2" when offered (else the first
subprotocol offered). It accepts permessage-deflate (RFC 7692) with
wsloop's defaults: messages of 64 bytes and more are sent compressed.
Every check prints `ok <name>` or `FAIL <name>: why`; the exit status is 1
if any check failed.

Connections, in order: /echo (compression="deflate", every echo check),
/subprotocol twice, /server-close, /no-context-takeover (both
no_context_takeover parameters), /window-bits (both windows 10 bits),
/uncompressed (compression=None).
"""

import asyncio
import os
import random
import ssl
import sys
import time

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

BASE = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else None
STEP = 30  # seconds any one check may take
MAX_SIZE = 32 << 20  # above the 16 MiB messages
SIZES = [("0B", 0), ("1KiB", 1 << 10), ("1MiB", 1 << 20), ("16MiB", 16 << 20)]
# 16 bytes of UTF-8 with 1-, 2-, 3- and 4-byte characters, so text of any
# multiple of 16 bytes splits characters across every frame and read boundary.
UNIT = "abcé✓🦀wxyz"
assert len(UNIT.encode()) == 16
# wsloop's default compress_threshold: shorter messages are sent as they are.
THRESHOLD = 64
DEFLATE = "permessage-deflate"

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


# Over wss:// the server's certificate is signed by a CA made for the
# test run; WSLOOP_TEST_CA names its PEM file, the only root trusted.
TLS = (
    ssl.create_default_context(cafile=os.environ["WSLOOP_TEST_CA"])
    if BASE is not None and BASE.startswith("wss://")
    else None
)


def open_ws(path, **kwargs):
    if TLS is not None:
        kwargs["ssl"] = TLS
    return connect(
        BASE + path,
        max_size=MAX_SIZE,
        ping_interval=None,  # no keepalive pings of its own in the checks
        open_timeout=STEP,
        close_timeout=STEP,
        **kwargs,
    )


class Compressed:
    """Records the compressed (RSV1) frames a connection receives, by
    wrapping the decoder of its permessage-deflate extension (`extension`,
    None when there is none): `sizes` holds each one's payload length as it
    came over the wire."""

    def __init__(self, ws):
        found = [e for e in ws.protocol.extensions if e.name == DEFLATE]
        self.extension = found[0] if found else None
        self.sizes = []
        if self.extension is None:
            return
        decode = self.extension.decode

        def recording(frame, **kwargs):
            if frame.rsv1:
                self.sizes.append(len(frame.data))
            return decode(frame, **kwargs)

        self.extension.decode = recording

    def mark(self):
        return len(self.sizes)

    def since(self, mark):
        """The compressed frames' sizes since `mark`."""
        return self.sizes[mark:]


def agreed(ws):
    """The Sec-WebSocket-Extensions answer, as a list of its parts."""
    value = ws.response.headers.get("Sec-WebSocket-Extensions")
    return None if value is None else [p.strip() for p in value.split(";")]


def describe(data):
    kind = "text" if isinstance(data, str) else "binary"
    return f"{kind} of {len(data)} items"


async def echo_checks(ws, seen):
    """Text and binary of every size, echoed. The text of THRESHOLD bytes
    and more comes back compressed (in one compressed frame). The binary is
    noise, which deflate cannot shrink, so the server may send it either
    way: what matters is that it comes back whole (and it went compressed,
    as websockets compresses everything it sends)."""

    def compressed(mark, size):
        got = seen.since(mark)
        want = 1 if size >= THRESHOLD else 0
        assert len(got) == want, f"{len(got)} compressed frames for {size} bytes, expected {want}"

    for label, size in SIZES:
        text = UNIT * (size // len(UNIT.encode()))

        async def text_echo(text=text, size=size):
            assert len(text.encode()) == size
            mark = seen.mark()
            await ws.send(text)
            got = await ws.recv()
            assert isinstance(got, str), f"expected text, got {describe(got)}"
            assert got == text, f"text of {len(got)} chars differs"
            compressed(mark, size)

        await check(f"echo-text-{label}", text_echo)

        data = random.Random(size).randbytes(size)

        async def binary_echo(data=data, size=size):
            mark = seen.mark()
            await ws.send(data)
            got = await ws.recv()
            assert isinstance(got, bytes), f"expected binary, got {describe(got)}"
            assert got == data, f"binary of {len(got)} bytes differs"
            if size < THRESHOLD:
                compressed(mark, size)

        await check(f"echo-binary-{label}", binary_echo)


async def fragmented_checks(ws, seen):
    async def text():
        # An iterable is sent as one message in several frames: TEXT with
        # FIN clear, CONTINUATION frames, the last with FIN set (each frame
        # compressed, RSV1 on the first).
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
    await fragmented_64kib_checks(ws, seen, "")


async def fragmented_64kib_checks(ws, seen, prefix):
    """64 KiB in four compressed fragments each way; the echo comes back
    compressed."""

    async def text():
        parts = [UNIT * 1024] * 4
        mark = seen.mark()
        await ws.send(parts)
        got = await ws.recv()
        assert got == "".join(parts), f"echo of {len(got)} chars differs"
        assert seen.since(mark), "the echo was not compressed"

    async def binary():
        parts = [bytes(range(256)) * 64] * 4
        mark = seen.mark()
        await ws.send(parts)
        got = await ws.recv()
        assert got == b"".join(parts), f"echo of {len(got)} bytes differs"
        assert seen.since(mark), "the echo was not compressed"

    await check(f"{prefix}fragmented-text-64KiB", text)
    await check(f"{prefix}fragmented-binary-64KiB", binary)


def noise_then_zeros(seed, size, times=1):
    """`size` bytes of noise `times` over, then as many zeros: the zeros
    make the message worth compressing however the noise fares (wsloop
    sends a message as it is when deflate does not make it smaller), and
    the repeats show how far back the server's compressor can see."""
    m = random.Random(seed).randbytes(size) * times
    return m + bytes(len(m))


async def repeat_echo(ws, seen, data):
    """Echoes `data` twice; returns the two echoes' compressed sizes."""
    mark = seen.mark()
    for _ in range(2):
        await ws.send(data)
        got = await ws.recv()
        assert got == data, f"echo of {len(got)} bytes differs"
    sizes = seen.since(mark)
    assert len(sizes) == 2, f"compressed frames: {sizes}"
    return sizes


async def context_takeover_check(ws, seen):
    async def takeover():
        # 1 KiB of noise does not compress, but the second time the
        # server's window (4 KiB by default) still holds the first.
        first, second = await repeat_echo(ws, seen, noise_then_zeros(1, 1 << 10))
        assert first > 1 << 10, f"noise compressed to {first} bytes"
        assert second * 20 < first, f"{second} bytes the second time, {first} the first"

    await check("context-takeover", takeover)


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
        async with open_ws(
            "/echo", subprotocols=["chat.v1", "chat.v2"], compression="deflate"
        ) as ws:
            await check("subprotocol-chosen", subprotocol_is(ws, "chat.v2"))
            seen = Compressed(ws)
            # The default windows: 12 bits each way (4 KiB kept per client).
            want = [DEFLATE, "server_max_window_bits=12", "client_max_window_bits=12"]
            await check("deflate-agreed", negotiated(ws, seen, want))
            await echo_checks(ws, seen)
            await fragmented_checks(ws, seen)
            await context_takeover_check(ws, seen)
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
    await no_context_takeover_checks()
    await window_bits_checks()
    await uncompressed_checks()

    if failures:
        print(f"python interop: {len(failures)} check(s) failed", flush=True)
        return 1
    print("python interop: every check passed", flush=True)
    return 0


def negotiated(ws, seen, want):
    """A check that the server answered `want` (the parts of its
    Sec-WebSocket-Extensions) and websockets put the extension in force."""

    async def body():
        assert agreed(ws) == want, f"the server answered {agreed(ws)}"
        assert seen.extension is not None, f"no {DEFLATE} in force: {ws.protocol.extensions}"

    return body


def echo_both(ws, seen, size):
    """Text and binary of `size` bytes echoed, both compressed."""

    async def body():
        text = UNIT * (size // 16)
        data = bytes(range(256)) * (size // 256)
        for message in (text, data):
            mark = seen.mark()
            await ws.send(message)
            got = await ws.recv()
            assert got == message, f"echo of {describe(got)} differs"
            assert len(seen.since(mark)) == 1, "the echo was not compressed"

    return body


async def no_context_takeover_checks():
    """Both no_context_takeover parameters: each side resets its compressor
    after every message, so websockets decodes each of the server's
    messages with a fresh decoder."""
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )
    try:
        async with open_ws("/no-context-takeover", extensions=[factory]) as ws:
            seen = Compressed(ws)
            want = [
                DEFLATE,
                "server_no_context_takeover",
                "client_no_context_takeover",
                "server_max_window_bits=12",
                "client_max_window_bits=12",
            ]
            await check("no-context-takeover-agreed", negotiated(ws, seen, want))

            async def echo():
                e = seen.extension
                assert e.remote_no_context_takeover and e.local_no_context_takeover, repr(e)
                await echo_both(ws, seen, 1 << 20)()
                # The same noise twice compresses no better the second time.
                first, second = await repeat_echo(ws, seen, noise_then_zeros(2, 8 << 10))
                assert min(first, second) > 8 << 10, f"{first} and {second} bytes"

            await check("no-context-takeover-echo", echo)
            await fragmented_64kib_checks(ws, seen, "no-context-takeover-")
    except Exception as e:  # noqa: BLE001
        report("no-context-takeover-connection", why(e))


async def window_bits_checks():
    """Both windows limited to 10 bits (1 KiB)."""
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=10)
    try:
        async with open_ws("/window-bits", extensions=[factory]) as ws:
            seen = Compressed(ws)
            want = [DEFLATE, "server_max_window_bits=10", "client_max_window_bits=10"]
            await check("window-bits-agreed", negotiated(ws, seen, want))

            async def echo():
                await echo_both(ws, seen, 1 << 20)()
                # A 2 KiB block of noise said twice: the repeat is out of a
                # 1 KiB window's reach, so both cost their size.
                message = noise_then_zeros(3, 2 << 10, times=2)
                mark = seen.mark()
                await ws.send(message)
                assert await ws.recv() == message, "echo differs"
                sizes = seen.since(mark)
                assert len(sizes) == 1 and sizes[0] > (4 << 10) * 95 // 100, f"compressed to {sizes}"

            await check("window-bits-echo", echo)
    except Exception as e:  # noqa: BLE001
        report("window-bits-connection", why(e))


async def uncompressed_checks():
    """compression=None: nothing offered, nothing agreed, plain frames."""
    try:
        async with open_ws("/uncompressed", compression=None) as ws:

            async def negotiated():
                assert agreed(ws) is None, f"the server answered {agreed(ws)}"
                assert ws.protocol.extensions == [], repr(ws.protocol.extensions)

            async def echo():
                for message in ("z" * 1024, bytes(1024)):
                    await ws.send(message)
                    assert await ws.recv() == message, "echo differs"

            await check("uncompressed-agreed-none", negotiated)
            await check("uncompressed-echo", echo)
    except Exception as e:  # noqa: BLE001
        report("uncompressed-connection", why(e))


def subprotocol_is(ws, expected):
    async def body():
        assert ws.subprotocol == expected, f"got {ws.subprotocol!r}"

    return body


if __name__ == "__main__":
    if BASE is None:
        print("usage: client.py ws://HOST:PORT", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main()))
