#!/usr/bin/env python3
"""The load-generator matrix behind BENCHMARKS.md's event-loop section, and
(--compression) the permessage-deflate rows behind its compression section.

Run it through scripts/bench, which raises the descriptor limit and builds
everything first. For every repetition, case and server: start the server
pinned to one CPU (taskset), wait for its port, run examples/loadgen pinned
to the other CPU with --server-pid, read the JSON line it prints last, stop
the server. Then take medians over the repetitions and write
bench/results/*.json, the tables between the markers in BENCHMARKS.md and
the bar chart docs/bench.svg.

Standard library only.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# Helpers shared with bench-programs and bench-tls.
from benchlib import fmt_bytes, fmt_count, fmt_pct, fmt_us, free_port, median, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "release")
PEERS = os.path.join(ROOT, "bench", "peers")
LOADGEN = os.path.join(TARGET, "examples", "loadgen")
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
DEFLATE_BEGIN = "<!-- bench-deflate:begin -->"
DEFLATE_END = "<!-- bench-deflate:end -->"
NODE_WS = os.path.join(ROOT, "tests", "interop", "node", "node_modules", "ws", "package.json")


def peer_version(name):
    """The version of `name` in bench/peers/Cargo.lock, or '?'."""
    try:
        with open(os.path.join(PEERS, "Cargo.lock")) as f:
            lock = f.read()
    except OSError:
        return "?"
    m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(name), lock)
    return m.group(1) if m else "?"


def node_ws_version():
    """The installed `ws` (tests/interop/node) and node's version."""
    try:
        with open(NODE_WS) as f:
            ws = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        ws = "?"
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        node = "?"
    return ws, node or "?"


# The main matrix's servers; the compression rows run their own
# (`DEFLATE_SERVERS`).
SERVERS = {
    "wsloop": {
        "label": "wsloop",
        "about": "this commit's `wsloop` binary, `--log-level warn --max-clients 20000`",
        "cmd": [os.path.join(TARGET, "wsloop"), "--listen", "{addr}",
                "--log-level", "warn", "--max-clients", "20000"],
        "echo": "/echo",
        "chat": "/chat",
        "color": "#d9480f",
    },
    "fastwebsockets": {
        "label": "fastwebsockets",
        "about": "fastwebsockets %s (`upgrade` feature, hyper %s, FragmentCollector), "
                 "tokio current_thread, TCP_NODELAY: `bench/peers/src/bin/fastwebsockets-echo.rs`"
                 % (peer_version("fastwebsockets"), peer_version("hyper")),
        "cmd": [os.path.join(PEERS, "target", "release", "fastwebsockets-echo"),
                "--listen", "{addr}"],
        "echo": "/",
        "chat": None,
        "color": "#1c7ed6",
    },
    "tokio-tungstenite": {
        "label": "tokio-tungstenite",
        "about": "tokio-tungstenite %s (`accept_async`, `next()`/`send()`), tokio current_thread, "
                 "TCP_NODELAY: `bench/peers/src/bin/tokio-tungstenite-echo.rs`"
                 % peer_version("tokio-tungstenite"),
        "cmd": [os.path.join(PEERS, "target", "release", "tokio-tungstenite-echo"),
                "--listen", "{addr}"],
        "echo": "/",
        "chat": None,
        "color": "#2f9e44",
    },
}


MATRIX_SERVERS = list(SERVERS)

_ECHO = os.path.join(TARGET, "examples", "echo")
_NODE_PEER = os.path.join(PEERS, "node-ws-echo.mjs")
DEFLATE_SERVERS = {
    "wsloop-deflate": {
        "label": "wsloop",
        "about": "this commit's library in `examples/echo` (`--deflate on`: the default "
                 "`Config`: level 1, threshold 64 B, context takeover with 12-bit windows "
                 "each way, the windows kept per connection and the codecs borrowed from "
                 "the loop's spares per message)",
        "cmd": [_ECHO, "{addr}", "--deflate", "on", "--max-clients", "20000"],
        "echo": "/echo",
        "color": "#d9480f",
    },
    "wsloop-deflate-nct": {
        "label": "wsloop, no context takeover",
        "about": "the same with `--deflate no-context-takeover` (`server_no_context_takeover` "
                 "and `client_no_context_takeover` asked for: nothing kept per connection)",
        "cmd": [_ECHO, "{addr}", "--deflate", "no-context-takeover", "--max-clients", "20000"],
        "echo": "/echo",
        "color": "#f08c00",
    },
    "node-ws": {
        "label": "node ws",
        "about": "ws %s on node %s: `bench/peers/node-ws-echo.mjs` (`--deflate on`: "
                 "perMessageDeflate with level 1 and a 64 B threshold as wsloop's defaults, "
                 "otherwise ws's defaults, context takeover, TCP_NODELAY)" % node_ws_version(),
        "cmd": ["node", _NODE_PEER, "--listen", "{addr}", "--deflate", "on"],
        "echo": "/",
        "color": "#5f3dc4",
    },
    "node-ws-nct": {
        "label": "node ws, no context takeover",
        "about": "the same with `--deflate no-context-takeover` (serverNoContextTakeover and "
                 "clientNoContextTakeover)",
        "cmd": ["node", _NODE_PEER, "--listen", "{addr}", "--deflate", "no-context-takeover"],
        "echo": "/",
        "color": "#9775fa",
    },
}
# uWebSockets (uNetworking/uWebSockets with uSockets, no SSL, -O3), built by
# hand outside this repository from its public sources: an echo server as
# its examples/EchoServer.cpp with `ws->send(message, opCode, true)` and
# `.compression` set to DEDICATED_COMPRESSOR | DEDICATED_DECOMPRESSOR
# (`echo-dedicated`) or SHARED_COMPRESSOR | SHARED_DECOMPRESSOR
# (`echo-shared`), the port as its one argument. WSLOOP_UWS_BIN names the
# folder that holds them; without it these rows run without uWebSockets.
UWS_BIN = os.environ.get("WSLOOP_UWS_BIN")
if UWS_BIN:
    DEFLATE_SERVERS["uws-dedicated"] = {
        "label": "uWS, dedicated",
        "about": "uWebSockets built by hand from its sources (`echo-dedicated` in `$WSLOOP_UWS_BIN`): "
                 "DEDICATED_COMPRESSOR | DEDICATED_DECOMPRESSOR, zlib level 6, "
                 "context takeover (whose compressor this uWS version silently builds "
                 "with a 512-byte window and memLevel 1: see below)",
        "cmd": [os.path.join(UWS_BIN, "echo-dedicated"), "{port}"],
        "echo": "/echo",
        "color": "#2f9e44",
    }
    DEFLATE_SERVERS["uws-shared"] = {
        "label": "uWS, shared",
        "about": "the same with SHARED_COMPRESSOR | SHARED_DECOMPRESSOR "
                 "(`echo-shared`: one compressor for all, no context takeover)",
        "cmd": [os.path.join(UWS_BIN, "echo-shared"), "{port}"],
        "echo": "/echo",
        "color": "#74b816",
    }
for _v in DEFLATE_SERVERS.values():
    _v["chat"] = None
SERVERS.update(DEFLATE_SERVERS)


class Row:
    def __init__(self, key, title, mode, args, metric, unit, lower_better=False,
                 broadcast=False, servers=None):
        self.key = key
        self.title = title
        self.mode = mode
        self.args = args
        self.metric = metric
        self.unit = unit
        self.lower_better = lower_better
        self.broadcast = broadcast
        # The servers this row runs against (None: every selected one).
        self.servers = servers


def rows(idle_n, broadcast_n):
    per_cpu = "per_server_cpu_s"
    return [
        Row("echo-16", "100 x 16 B, 1 in flight", "echo",
            ["-c", "100", "-d", "1", "-s", "16"], per_cpu, "echoes / server CPU-s"),
        Row("echo-16-d16", "100 x 16 B, 16 in flight", "echo",
            ["-c", "100", "-d", "16", "-s", "16"], per_cpu, "echoes / server CPU-s"),
        Row("echo-1k", "100 x 1 KiB, 1 in flight", "echo",
            ["-c", "100", "-d", "1", "-s", "1KiB"], per_cpu, "echoes / server CPU-s"),
        Row("echo-64k", "10 x 64 KiB, 1 in flight", "echo",
            ["-c", "10", "-d", "1", "-s", "64KiB"], per_cpu, "echoes / server CPU-s"),
        Row("idle", "idle memory, %s connections" % f"{idle_n:,}", "idle",
            ["-c", str(idle_n)], "rss_per_conn_bytes", "server RSS bytes / connection",
            lower_better=True),
        Row("handshake", "handshakes, 16 at a time", "handshake",
            ["-c", "16"], per_cpu, "handshakes / server CPU-s"),
        Row("broadcast", "broadcast 100 B to %s clients" % f"{broadcast_n:,}", "broadcast",
            ["-c", str(broadcast_n), "-d", "4", "-s", "100"], per_cpu,
            "deliveries / server CPU-s", broadcast=True),
    ]


def deflate_rows(idle_n):
    """The compression rows (--compression): 1 KiB JSON-like chat messages,
    as they are and compressed, and the memory a client costs once it has
    exchanged compressed messages."""
    per_cpu = "per_server_cpu_s"
    every = list(DEFLATE_SERVERS)
    context = ["wsloop-deflate", "node-ws"] + (["uws-dedicated"] if UWS_BIN else [])
    n = "{:,}".format(idle_n)
    return [
        Row("chat-1k", "100 x 1 KiB chat text, uncompressed (no offer), 1 in flight", "echo",
            ["-c", "100", "-d", "1", "-s", "1KiB", "--payload", "chat"], per_cpu,
            "echoes / server CPU-s", servers=context),
        Row("chat-1k-deflate", "100 x 1 KiB chat text, permessage-deflate, 1 in flight", "echo",
            ["-c", "100", "-d", "1", "-s", "1KiB", "--deflate"], per_cpu,
            "echoes / server CPU-s", servers=every),
        Row("idle-plain", "memory, %s clients, no compression" % n, "idle",
            ["-c", str(idle_n)], "rss_per_conn_bytes", "server RSS bytes / client",
            lower_better=True, servers=context),
        Row("idle-deflate-1", "memory, %s clients after 1 compressed 1 KiB echo each" % n,
            "idle", ["-c", str(idle_n), "--deflate", "--messages", "1", "-s", "1KiB"],
            "rss_per_conn_bytes", "server RSS bytes / client", lower_better=True, servers=every),
        Row("idle-deflate-64", "memory, %s clients after 64 compressed 1 KiB echoes each" % n,
            "idle", ["-c", str(idle_n), "--deflate", "--messages", "64", "-s", "1KiB"],
            "rss_per_conn_bytes", "server RSS bytes / client", lower_better=True, servers=every),
    ]


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def run_one(server_key, row, opts, logdir, tag):
    server = SERVERS[server_key]
    port = free_port()
    addr = "127.0.0.1:%d" % port
    cmd = ["taskset", "-c", opts.server_cpu] + [
        a.replace("{addr}", addr).replace("{port}", str(port)) for a in server["cmd"]]
    log_path = os.path.join(logdir, tag + ".server.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_port(port, proc)
        time.sleep(0.2)  # let the probe connection go before the baseline
        path = server["chat"] if row.broadcast else server["echo"]
        window = opts.hold if row.mode == "idle" else opts.duration
        warmup = "1" if row.mode == "idle" else str(opts.warmup)
        lg = ["taskset", "-c", opts.loadgen_cpu, LOADGEN, row.mode,
              "--url", "ws://%s%s" % (addr, path), *row.args,
              "-t", str(window), "-w", warmup, "--server-pid", str(proc.pid), "-q"]
        started = time.monotonic()
        done = subprocess.run(lg, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=window + float(warmup) + 180)
        elapsed = time.monotonic() - started
    finally:
        code = stop(proc)
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("loadgen printed no JSON (exit %d): %s" %
                           (done.returncode, done.stderr.strip()[-500:]))
    result = json.loads(lines[-1])
    result["server"] = server_key
    result["row"] = row.key
    result["loadgen_exit"] = done.returncode
    result["server_exit"] = code
    result["wall_s"] = round(elapsed, 2)
    result["command"] = " ".join(lg[3:]).replace(addr, "127.0.0.1:PORT").replace(
        str(proc.pid), "PID")
    with open(os.path.join(logdir, tag + ".loadgen.txt"), "w") as f:
        f.write(done.stdout + done.stderr)
    return result


def summarize(results, row_list, server_keys):
    summary = {}
    for row in row_list:
        for key in server_keys:
            runs = [r for r in results if r["row"] == row.key and r["server"] == key]
            if not runs:
                continue
            lat = [r.get("latency_us") or {} for r in runs]
            summary["%s/%s" % (row.key, key)] = {
                "row": row.key,
                "server": key,
                "reps": len(runs),
                "metric": median([r.get(row.metric) for r in runs]),
                "metric_all": [r.get(row.metric) for r in runs],
                "rate": median([r.get("rate") for r in runs]),
                "server_cpu_util": median([r.get("server_cpu_util") for r in runs]),
                "loadgen_cpu_util": median([r.get("loadgen_cpu_util") for r in runs]),
                "p50_us": median([l.get("p50") for l in lat]),
                "p99_us": median([l.get("p99") for l in lat]),
                "p999_us": median([l.get("p999") for l in lat]),
                "frame_bytes": median([r.get("frame_bytes") for r in runs]),
                "rx_bytes_per_echo": median([r.get("rx_bytes_per_echo") for r in runs]),
                "errors": sum(r.get("errors", 0) for r in runs),
                "client_limited": sum(bool(r.get("client_limited")) for r in runs) * 2 > len(runs),
            }
    return summary


def fmt_metric(row, v):
    return fmt_bytes(v) if row.lower_better else fmt_count(v)


def environment():
    def cmd(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else "?"
    except OSError:
        pass
    commit = cmd("git", "rev-parse", "--short", "HEAD")
    if cmd("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": os.uname().release,
        "rustc": cmd("rustc", "--version"),
        "commit": commit,
    }


def markdown_deflate(meta, summary, row_list, server_keys, opts):
    """The compression section: one table of the headline figures (servers
    as columns), one of the details."""
    out = [DEFLATE_BEGIN, ""]
    if opts.quick:
        out += ["> **Quick run** (`scripts/bench --compression --quick`: 1 repetition, short "
                "windows, small N): smoke-test figures, noisy; not the benchmark.", ""]
    out += [
        "- Date: %s; commit %s" % (meta["date"], meta["commit"]),
        "- CPU: `%s`, %s CPUs; kernel %s; %s" % (meta["cpu"], meta["cpus"], meta["kernel"],
                                                 meta["rustc"]),
        "- Each server pinned to CPU %s, the load generator to CPU %s; %d repetition%s per "
        "case, medians; %s s windows after %s s of warm-up (idle: held %s s)."
        % (opts.server_cpu, opts.loadgen_cpu, opts.reps, "" if opts.reps == 1 else "s",
           opts.duration, opts.warmup, opts.hold),
        "- Servers:",
    ]
    for key in server_keys:
        out.append("  - **%s**: %s" % (SERVERS[key]["label"], SERVERS[key]["about"]))
    out += ["", "| case | unit | " + " | ".join(SERVERS[k]["label"] for k in server_keys) + " |",
            "| --- | --- | " + " | ".join("---" for _ in server_keys) + " |"]
    limited = False
    for row in row_list:
        cells = [row.title, row.unit]
        for key in server_keys:
            s = summary.get("%s/%s" % (row.key, key))
            if s is None:
                cells.append("–")
                continue
            mark = " †" if s["client_limited"] else ""
            limited |= bool(mark)
            err = " (%d errors)" % s["errors"] if s["errors"] else ""
            cells.append(fmt_metric(row, s["metric"]) + mark + err)
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    if limited:
        out += ["† client-limited: the load generator used more than 90 % of its core.", ""]
    out += ["| case | server | per second | server CPU | loadgen CPU | p50 | p99 | "
            "sent / received per echo | errors |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in row_list:
        if row.mode != "echo":
            continue
        for key in server_keys:
            s = summary.get("%s/%s" % (row.key, key))
            if s is None:
                continue
            rate = fmt_count(s["rate"])
            wire = "–"
            if row.mode == "echo" and s.get("frame_bytes") and s.get("rx_bytes_per_echo"):
                wire = "%s / %s" % (fmt_bytes(s["frame_bytes"]), fmt_bytes(s["rx_bytes_per_echo"]))
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                row.title, SERVERS[key]["label"], rate, fmt_pct(s["server_cpu_util"]),
                fmt_pct(s["loadgen_cpu_util"]), fmt_us(s["p50_us"]), fmt_us(s["p99_us"]),
                wire, s["errors"]))
    out += ["",
            "Sent / received: the client's frames (compressed once, without context, at "
            "level 6) and the server's answers, on the wire, per echo.", "",
            "```sh",
            "scripts/bench --compression          # this section: 3 repetitions",
            "scripts/bench --compression --quick  # 1 repetition, short windows, 200 clients",
            "```", "",
            "Raw results: `bench/results/%s`." % os.path.basename(opts.out), "",
            DEFLATE_END]
    return "\n".join(out)


def markdown(meta, summary, row_list, server_keys, opts):
    out = [BEGIN, ""]
    if opts.quick:
        out += ["> **Quick run** (`scripts/bench --quick`: 1 repetition, short windows, "
                "small N): smoke-test figures, noisy; not the benchmark.", ""]
    out += [
        "- Date: %s; commit %s" % (meta["date"], meta["commit"]),
        "- CPU: `%s`, %s CPUs; kernel %s; %s" % (meta["cpu"], meta["cpus"], meta["kernel"],
                                                 meta["rustc"]),
        "- Each server pinned to CPU %s, the load generator (`examples/loadgen`, one thread) "
        "to CPU %s; %d repetition%s per case, medians; %s s windows after %s s of warm-up "
        "(idle: held %s s)." % (opts.server_cpu, opts.loadgen_cpu, opts.reps,
                                "" if opts.reps == 1 else "s", opts.duration, opts.warmup,
                                opts.hold),
        "- Servers:",
    ]
    for key in server_keys:
        out.append("  - **%s**: %s" % (SERVERS[key]["label"], SERVERS[key]["about"]))
    out += ["", "### Work per server CPU-second", "",
            "Echo, handshake and broadcast: work done per second of the server's CPU time "
            "(utime + stime from `/proc/PID/stat` over the window), higher is better; "
            "idle: the server's RSS growth per connection (`VmRSS` before and after), "
            "lower is better.", ""]
    head = ["case", "unit"] + [SERVERS[k]["label"] for k in server_keys]
    peers = [k for k in server_keys if k != "wsloop"]
    if "wsloop" in server_keys and peers:
        head.append("wsloop / best peer")
    out.append("| " + " | ".join(head) + " |")
    out.append("| " + " | ".join(["---"] * len(head)) + " |")
    limited = False
    for row in row_list:
        cells = [row.title, row.unit]
        values = {}
        for key in server_keys:
            s = summary.get("%s/%s" % (row.key, key))
            if s is None:
                cells.append("n/a (no broadcast server)" if row.broadcast and key != "wsloop"
                             else "–")
                continue
            values[key] = s["metric"]
            mark = " †" if s["client_limited"] else ""
            err = " (%d errors)" % s["errors"] if s["errors"] else ""
            limited |= bool(mark)
            cells.append(fmt_metric(row, s["metric"]) + mark + err)
        if len(head) > len(cells):
            peer_values = [values[k] for k in peers if values.get(k)]
            if values.get("wsloop") and peer_values:
                best = min(peer_values) if row.lower_better else max(peer_values)
                cells.append("%.2f" % (values["wsloop"] / best))
            else:
                cells.append("–")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    if limited:
        out += ["† client-limited: the load generator used more than 90 % of its core "
                "during the window, so the server may have had idle time; work per server "
                "CPU-second stays comparable, the per-second rate does not.", ""]
    out += ["![wsloop and its peers, work per server CPU-second](docs/bench.svg)", "",
            "### Details", "",
            "| case | server | per second | server CPU | loadgen CPU | p50 | p99 | p99.9 | errors |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in row_list:
        for key in server_keys:
            s = summary.get("%s/%s" % (row.key, key))
            if s is None:
                continue
            rate = "–" if row.mode == "idle" else fmt_count(s["rate"])
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                row.title, SERVERS[key]["label"], rate, fmt_pct(s["server_cpu_util"]),
                fmt_pct(s["loadgen_cpu_util"]), fmt_us(s["p50_us"]), fmt_us(s["p99_us"]),
                fmt_us(s["p999_us"]), s["errors"]))
    out += ["",
            "Latency: echo round trip (send to echo), handshake: connect to `101`, broadcast: "
            "send to each delivery. Broadcast counts deliveries at the receivers (the sender's "
            "own copy is not counted); the peers are echo servers only.", "",
            "### Reproduce", "",
            "```sh",
            "scripts/bench                      # this whole section: %d repetitions" % 3,
            "scripts/bench --quick              # 1 repetition, 2 s windows, small N",
            "scripts/bench --rows echo-16 --servers wsloop,fastwebsockets --reps 1 --no-write",
            "```", "",
            "One case by hand (what the script runs, with `ulimit -n 20000` for 10,000 "
            "connections):", "",
            "```sh",
            "cargo build --release --bin wsloop --example loadgen",
            "taskset -c 0 target/release/wsloop --listen 127.0.0.1:8080 --log-level warn "
            "--max-clients 20000 &",
            "taskset -c 1 target/release/examples/loadgen echo --url ws://127.0.0.1:8080/echo "
            "-c 100 -d 1 -s 16 -t 10 --server-pid $!",
            "```", "",
            "Raw results: `bench/results/%s`." % os.path.basename(opts.out), "",
            END]
    return "\n".join(out)


def svg(summary, row_list, server_keys, quick):
    """A grouped horizontal bar chart: one group per case, bars scaled to the
    largest in the group, each labelled with its figure."""
    bar_h, gap, pad, left, width, bar_w = 16, 4, 18, 300, 900, 460
    esc = lambda s: (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    groups = []
    for row in row_list:
        bars = []
        for key in server_keys:
            s = summary.get("%s/%s" % (row.key, key))
            if s is None and not (row.broadcast and key != "wsloop"):
                continue
            bars.append((key, s))
        if bars:
            groups.append((row, bars))
    o = []
    title = "wsloop and its peers: work per server CPU-second"
    if quick:
        title += " (quick run: noisy)"
    o.append('<text x="16" y="26" font-size="17" font-weight="bold">%s</text>' % esc(title))
    x = 16
    for key in server_keys:
        o.append('<rect x="%d" y="40" width="14" height="14" fill="%s"/>'
                 % (x, SERVERS[key]["color"]))
        o.append('<text x="%d" y="52">%s</text>' % (x + 20, esc(SERVERS[key]["label"])))
        x += 44 + 7 * len(SERVERS[key]["label"])
    y = 76
    for row, bars in groups:
        better = "lower is better" if row.lower_better else "higher is better"
        o.append('<text x="16" y="%d" font-weight="bold">%s</text>' % (y + 12, esc(row.title)))
        o.append('<text x="16" y="%d" fill="#555" font-size="12">%s (%s)</text>'
                 % (y + 28, esc(row.unit), better))
        values = [s["metric"] for _, s in bars if s and s["metric"]]
        top = max(values) if values else 1
        by = y
        for key, s in bars:
            if s is None or not s["metric"]:
                why = "no broadcast server" if row.broadcast and key != "wsloop" else "n/a"
                o.append('<text x="%d" y="%d" fill="#777">%s: %s</text>'
                         % (left, by + 12, esc(SERVERS[key]["label"]), why))
            else:
                w = max(1.0, bar_w * s["metric"] / top)
                o.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>'
                         % (left, by, w, bar_h, SERVERS[key]["color"]))
                label = fmt_metric(row, s["metric"]) + (" †" if s["client_limited"] else "")
                o.append('<text x="%.1f" y="%d">%s</text>' % (left + w + 6, by + 12, esc(label)))
            by += bar_h + gap
        y = max(by, y + 34) + pad
        o.append('<line x1="16" x2="%d" y1="%d" y2="%d" stroke="#ddd"/>'
                 % (width - 16, y - pad / 2, y - pad / 2))
    height = y + 16
    o.append('<text x="16" y="%d" fill="#555" font-size="11">† client-limited '
             '(load generator above 90 %% of its core). Generated by scripts/bench.</text>'
             % (height - 8))
    o.append("</svg>")
    head = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="13">'
            % (width, height, width, height),
            '<rect width="100%" height="100%" fill="#ffffff"/>']
    return "\n".join(head + o) + "\n"


def write_benchmarks_md(section, begin=BEGIN, end_marker=END):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    if begin in text and end_marker in text:
        start = text.index(begin)
        end = text.index(end_marker) + len(end_marker)
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="wsloop against fastwebsockets and tokio-tungstenite: servers pinned to "
                    "one CPU, examples/loadgen to another, medians of repetitions.")
    p.add_argument("--quick", action="store_true",
                   help="1 repetition, 2 s windows, 1,000 idle connections, 500 broadcast "
                        "receivers; writes bench/results/quick.json only")
    p.add_argument("--compression", action="store_true",
                   help="the permessage-deflate rows instead of the matrix: wsloop "
                        "(examples/echo) and node ws (bench/peers/node-ws-echo.mjs), with and "
                        "without context takeover; writes bench/results/deflate.json and "
                        "BENCHMARKS.md's compression section")
    p.add_argument("--reps", type=int, help="repetitions per case (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="measured seconds (default 10, quick 2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds (default 2, quick 1)")
    p.add_argument("--hold", type=float, help="idle: seconds held (default 5, quick 2)")
    p.add_argument("--idle-connections", type=int,
                   help="default 10000, quick 1000; --compression: default 1000, quick 200")
    p.add_argument("--broadcast-clients", type=int, help="default 10000, quick 500")
    p.add_argument("--rows", help="comma-separated cases: echo-16, echo-16-d16, echo-1k, "
                                  "echo-64k, idle, handshake, broadcast; --compression: "
                                  "chat-1k, chat-1k-deflate, idle-plain, idle-deflate-1, "
                                  "idle-deflate-64 (default all)")
    p.add_argument("--servers", help="comma-separated: wsloop, fastwebsockets, "
                                     "tokio-tungstenite; --compression: wsloop-deflate, "
                                     "wsloop-deflate-nct, node-ws, node-ws-nct (default all)")
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--loadgen-cpu", default="1")
    p.add_argument("--out", help="results JSON (default bench/results/latest.json, "
                                 "quick: bench/results/quick.json)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--write", dest="write", action="store_true", default=None,
                   help="rewrite BENCHMARKS.md's section and docs/bench.svg (default unless --quick)")
    w.add_argument("--no-write", dest="write", action="store_false")
    opts = p.parse_args()

    q = opts.quick
    opts.reps = opts.reps or (1 if q else 3)
    opts.duration = opts.duration or (2 if q else 10)
    opts.warmup = opts.warmup or (1 if q else 2)
    opts.hold = opts.hold or (2 if q else 5)
    z = opts.compression
    if z:
        idle_n = opts.idle_connections or (200 if q else 1000)
    else:
        idle_n = opts.idle_connections or (1000 if q else 10000)
    bc_n = opts.broadcast_clients or (500 if q else 10000)
    if opts.write is None:
        opts.write = not q
    results_name = ("deflate-quick.json" if q else "deflate.json") if z else \
        ("quick.json" if q else "latest.json")
    opts.out = opts.out or os.path.join(ROOT, "bench", "results", results_name)
    all_rows = deflate_rows(idle_n) if z else rows(idle_n, bc_n)
    if opts.rows:
        wanted = opts.rows.split(",")
        unknown = set(wanted) - {r.key for r in all_rows}
        if unknown:
            p.error("unknown rows: %s" % ", ".join(sorted(unknown)))
        all_rows = [r for r in all_rows if r.key in wanted]
    known = list(DEFLATE_SERVERS) if z else MATRIX_SERVERS
    server_keys = known
    if opts.servers:
        server_keys = opts.servers.split(",")
        unknown = set(server_keys) - set(known)
        if unknown:
            p.error("unknown servers: %s" % ", ".join(sorted(unknown)))
    for key in server_keys:
        exe = SERVERS[key]["cmd"][0]
        path = exe if os.path.isabs(exe) else shutil.which(exe)
        if not path or not os.access(path, os.X_OK):
            sys.exit("missing %s: run scripts/bench (it builds everything)" % exe)
    if not os.access(LOADGEN, os.X_OK):
        sys.exit("missing %s: run scripts/bench (it builds everything)" % LOADGEN)
    if z and any(k.startswith("node-") for k in server_keys) and not os.path.exists(NODE_WS):
        sys.exit("missing %s: (cd tests/interop/node && npm ci)" % NODE_WS)

    plan = [(rep, row, key) for rep in range(opts.reps) for row in all_rows
            for key in server_keys if not (row.broadcast and SERVERS[key]["chat"] is None)
            and (row.servers is None or key in row.servers)]
    meta = environment()
    logdir = tempfile.mkdtemp(prefix="wsloop-bench-")
    print("%d runs; logs in %s" % (len(plan), logdir), file=sys.stderr)
    results = []
    for i, (rep, row, key) in enumerate(plan, 1):
        tag = "%s-%s-%d" % (key, row.key, rep + 1)
        try:
            r = run_one(key, row, opts, logdir, tag)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
            print("[%d/%d] %s: FAILED: %s" % (i, len(plan), tag, e), file=sys.stderr)
            results.append({"server": key, "row": row.key, "rep": rep + 1, "failed": str(e),
                            "errors": 1})
            continue
        r["rep"] = rep + 1
        results.append(r)
        flags = []
        if r.get("client_limited"):
            flags.append("client-limited")
        if r.get("errors"):
            flags.append("%d errors: %s" % (r["errors"], r.get("error_kinds")))
        print("[%d/%d] %-36s %12s %s (%.0f/s, server %s, loadgen %s)%s" % (
            i, len(plan), tag, fmt_metric(row, r.get(row.metric)), row.unit,
            r.get("rate") or 0, fmt_pct(r.get("server_cpu_util")),
            fmt_pct(r.get("loadgen_cpu_util")),
            "  [" + "; ".join(flags) + "]" if flags else ""), file=sys.stderr)

    summary = summarize(results, all_rows, server_keys)
    os.makedirs(os.path.dirname(opts.out), exist_ok=True)
    with open(opts.out, "w") as f:
        json.dump({"meta": meta, "quick": q, "reps": opts.reps, "duration_s": opts.duration,
                   "warmup_s": opts.warmup, "summary": summary, "runs": results}, f, indent=1)
        f.write("\n")
    if z:
        section = markdown_deflate(meta, summary, all_rows, server_keys, opts)
        print(section)
        if opts.write:
            write_benchmarks_md(section, DEFLATE_BEGIN, DEFLATE_END)
            print("wrote BENCHMARKS.md's compression section and %s"
                  % os.path.relpath(opts.out, ROOT), file=sys.stderr)
    else:
        section = markdown(meta, summary, all_rows, server_keys, opts)
        print(section)
    if opts.write and not z:
        write_benchmarks_md(section)
        with open(os.path.join(ROOT, "docs", "bench.svg"), "w") as f:
            f.write(svg(summary, all_rows, server_keys, q))
        print("wrote BENCHMARKS.md, docs/bench.svg and %s" % os.path.relpath(opts.out, ROOT),
              file=sys.stderr)
    elif not opts.write:
        print("wrote %s (BENCHMARKS.md and docs/bench.svg untouched)"
              % os.path.relpath(opts.out, ROOT), file=sys.stderr)
    failed = sum(1 for r in results if r.get("failed") or r.get("errors"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
