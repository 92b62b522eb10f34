"""What the side-by-side benchmark scripts share: scripts/bench-programs
(programs as handlers, against websocketd), scripts/bench-tls (wss://,
against tokio-tungstenite with tokio-rustls) and scripts/bench-topics
(topics, against uWebSockets' pub/sub, and across loops).

Both run, for every repetition, case and server: the server pinned to one
CPU (`taskset`), a wait for its port, examples/loadgen pinned to another CPU
with `--server-pid`, the JSON line it prints last, then the server stopped
and every process it started accounted for (this process is a child
subreaper). Then medians over the repetitions, ratios to a base server of
the same run, markdown tables between markers in BENCHMARKS.md and a bar
chart in SVG. Here: the processes, the figures and their formatting, the
spread table, the goal checks' row walk, the chart, the section writer and
the common flags. The scripts keep their servers, cases, tables and goals.

Standard library only; Linux (/proc, taskset, prctl).
"""

import argparse
import ctypes
import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "release")
LOADGEN = os.path.join(TARGET, "examples", "loadgen")
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")


class Case:
    """One loadgen invocation against several servers. `base` names the
    case whose figures the ratios are taken against (itself when the base
    server runs in it)."""

    def __init__(self, key, group, title, mode, args, servers, base=None):
        self.key = key
        self.group = group
        self.title = title
        self.mode = mode
        self.args = args
        self.servers = servers
        self.base = base or key


# ---------------------------------------------------------------- flags


def parser(prog, doc, description, outputs):
    """The script's argument parser: its docstring from "What runs" on as
    the epilog, and the common flags (add_common_args)."""
    p = argparse.ArgumentParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc[doc.index("What runs"):], description=description)
    add_common_args(p, outputs)
    return p


def select_cases(p, case_list, spec):
    """The cases `spec` (--cases: comma-separated keys; None: all) names,
    and the cases their ratios are taken against."""
    if not spec:
        return case_list
    wanted = spec.split(",")
    unknown = set(wanted) - {c.key for c in case_list}
    if unknown:
        p.error("unknown cases: %s" % ", ".join(sorted(unknown)))
    need = set(wanted) | {c.base for c in case_list if c.key in wanted}
    return [c for c in case_list if c.key in need]


def require(built, build_hint, tools):
    """Exit unless every path in `built` is executable (else: build it with
    `build_hint`) and every command in `tools` is on the PATH."""
    for exe in built:
        if not os.access(exe, os.X_OK):
            sys.exit("missing %s: %s" % (os.path.relpath(exe, ROOT), build_hint))
    for exe in tools:
        if not shutil.which(exe):
            sys.exit("missing %s" % exe)


def prepare(opts, connections):
    """Raise the descriptor limit (exit if `connections` at once cannot
    fit) and become a child subreaper; the limit goes to opts.nofile."""
    opts.nofile = raise_nofile()
    if connections and opts.nofile < connections + 100:
        sys.exit("the descriptor limit is %d; %s connections need more"
                 % (opts.nofile, "{:,}".format(connections)))
    if not become_subreaper():
        print("warning: could not become a child subreaper; orphans are looked for in the "
              "server's session only", file=sys.stderr)


def add_common_args(p, outputs):
    """--reps, --quick and --no-write; `outputs` names what a run that
    writes rewrites."""
    p.add_argument("--reps", type=int, help="repetitions per case (default 3; --quick: 1)")
    p.add_argument("--quick", action="store_true",
                   help="1 repetition and short windows (2 s, idle held 1 s): a smoke test; "
                        "implies --no-write")
    p.add_argument("--no-write", dest="write", action="store_false",
                   help="print the section and keep the results JSON beside the logs (in a "
                        "temporary folder): nothing in the repository changes. By default "
                        "%s are rewritten" % outputs)


def add_placement_args(p):
    """--server-cpu, --loadgen-cpu and --grace."""
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--loadgen-cpu", default="1")
    p.add_argument("--grace", type=float, default=5.0,
                   help="seconds the server's children get to go after it exits before "
                        "they are killed and reported (default 5)")


def settle_opts(opts):
    """Repetitions and windows from --reps and --quick: 5 s windows after
    1 s of warm-up, idle held 3 s (--quick: 1 repetition, 2 s, held 1 s,
    and nothing written)."""
    q = opts.quick
    opts.reps = opts.reps or (1 if q else 3)
    opts.duration = 2 if q else 5
    opts.warmup = 1
    opts.hold = 1 if q else 3
    if q:
        opts.write = False  # a quick run never replaces the published figures


# ---------------------------------------------------------------- processes

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Orphaned descendants of our servers are re-parented to this script
    (instead of init), so none can slip away unseen."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 20000 if hard == resource.RLIM_INFINITY or hard >= 20000 else hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_table():
    """{pid: (ppid, session, comm)} of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        if rest[0] == "Z":
            continue  # a zombie is gone already; reap() collects ours
        table[int(name)] = (int(rest[1]), int(rest[3]), comm)
    return table


def descendants(root, table=None):
    """The pids below `root` (not itself)."""
    table = table if table is not None else proc_table()
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def leftovers(session):
    """Live processes the server started and left: orphans re-parented to
    this script (subreaper) and their descendants, and anything still in
    the server's session."""
    table = proc_table()
    me = os.getpid()
    found = set(descendants(me, table))
    found |= {pid for pid, (_, sid, _) in table.items() if sid == session}
    found.discard(me)
    return {pid: table[pid][2] for pid in found if pid in table}


def reap():
    """Collect exited orphans (zombies re-parented to us). Only called when
    no Popen child of ours is running, so no exit status is stolen."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop(proc, session, grace):
    """SIGTERM the server (SIGKILL after 10 s), then wait up to `grace`
    seconds for every process it started to be gone; kill the rest.
    Returns (exit code, orphans alive when the server exited, seconds they
    took to go, {pid: comm} of the stragglers killed)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    code = proc.returncode
    reap()
    at_exit = leftovers(session)
    started = time.monotonic()
    left = at_exit
    while left and time.monotonic() - started < grace:
        time.sleep(0.05)
        reap()
        left = leftovers(session)
    lingered = round(time.monotonic() - started, 2) if at_exit else 0.0
    killed = dict(left)
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if killed:
        deadline = time.monotonic() + 5
        while leftovers(session) and time.monotonic() < deadline:
            time.sleep(0.05)
            reap()
    reap()
    return code, len(at_exit), lingered, killed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server not listening on port %d after %.0f s" % (port, within))


def run_one(server_cmd, loadgen_args, mode, opts, logdir, tag, result, redact=(),
            server_cpu=None, setup_allowance=180):
    """One server, one loadgen run. In `server_cmd` (the server's argv) and
    `loadgen_args` (loadgen's, after the mode: the URL and the case's flags)
    `{addr}` becomes 127.0.0.1:PORT and `{port}` PORT, a free port. `result`
    holds the fields the result starts with; `redact` is (text, stand-in)
    pairs for the command recorded. `server_cpu` is the server's CPU list
    for taskset (default opts.server_cpu); `setup_allowance` the seconds
    loadgen may take beyond its warm-up and window (setting up, draining)
    before it is killed. Always returns a result dict; a failed run has
    "failed" set."""
    port = free_port()
    addr = "127.0.0.1:%d" % port
    fill = lambda a: a.replace("{addr}", addr).replace("{port}", str(port))
    cmd = ["taskset", "-c", server_cpu or opts.server_cpu] + [fill(a) for a in server_cmd]
    window = opts.hold if mode == "idle" else opts.duration
    lg = ["taskset", "-c", opts.loadgen_cpu, LOADGEN, mode] + [fill(a) for a in loadgen_args] + [
        "-t", str(window), "-w", str(opts.warmup), "--server-pid", "{pid}", "-q"]
    result = dict(result)
    log_path = os.path.join(logdir, tag + ".server.log")
    with open(log_path, "w") as log:
        # A session of its own: taskset execs the server, so the server's
        # pid is the session id, and whatever it forks stays in it.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=ROOT, start_new_session=True)
    lg = [a.replace("{pid}", str(proc.pid)) for a in lg]
    out = err = ""
    try:
        wait_port(port, proc)
        time.sleep(0.2)  # let the probe connection go before the baseline
        started = time.monotonic()
        gen = subprocess.Popen(lg, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        most = 0
        if mode == "idle":
            # Count the server's processes while the clients are held
            # (idle only: the scan costs CPU).
            deadline = time.monotonic() + window + opts.warmup + setup_allowance
            while gen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
                most = max(most, 1 + len(descendants(proc.pid)))
        try:
            out, err = gen.communicate(timeout=window + opts.warmup + setup_allowance)
        except subprocess.TimeoutExpired:
            gen.kill()
            out, err = gen.communicate()
            result["failed"] = "loadgen timed out"
        result["wall_s"] = round(time.monotonic() - started, 2)
        result["loadgen_exit"] = gen.returncode
        if mode == "idle":
            result["server_processes"] = most
    except (RuntimeError, OSError) as e:
        result["failed"] = str(e)
    finally:
        code, at_exit, lingered, killed = stop(proc, proc.pid, opts.grace)
    result["server_exit"] = code
    result["orphans_at_exit"] = at_exit
    result["orphans_gone_s"] = lingered
    result["stragglers_killed"] = sorted(set(killed.values()))
    result["stragglers_killed_n"] = len(killed)
    command = " ".join(lg[3:]).replace(addr, "127.0.0.1:PORT").replace(
        "localhost:%d" % port, "localhost:PORT").replace(" %d " % proc.pid, " PID ")
    for text, stand_in in redact:
        command = command.replace(text, stand_in)
    result["command"] = command
    with open(os.path.join(logdir, tag + ".loadgen.txt"), "w") as f:
        f.write(out + err)
    if "failed" in result:
        return result
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        result["failed"] = "loadgen printed no JSON (exit %s): %s" % (
            result.get("loadgen_exit"), err.strip()[-300:])
        return result
    data = json.loads(lines[-1])
    data.update(result)
    if data.get("errors", 0) != 0:
        data["failed"] = "%d errors: %s" % (data["errors"], data.get("error_kinds"))
    elif data.get("loadgen_exit") != 0:
        data["failed"] = "loadgen exit %s" % data.get("loadgen_exit")
    return data


def run_plan(plan, run, metrics, t0):
    """Every (repetition, case, server) of `plan` in turn through
    `run(case, key, tag)`, a progress line each on stderr (the case's
    figures from `metrics`, failures, client-limited runs, orphans and
    stragglers). Returns the results, each with its repetition."""
    results = []
    for i, (rep, case, key) in enumerate(plan, 1):
        tag = "%s-%s-%d" % (case.key, key, rep + 1)
        r = run(case, key, tag)
        r["rep"] = rep + 1
        results.append(r)
        flags = []
        if r.get("failed"):
            flags.append("FAILED: " + r["failed"])
        if r.get("client_limited"):
            flags.append("client-limited")
        if r.get("orphans_at_exit"):
            flags.append("%d orphans at exit, gone in %.1f s" % (r["orphans_at_exit"],
                                                               r["orphans_gone_s"]))
        if r.get("stragglers_killed_n"):
            flags.append("KILLED %d stragglers: %s" % (r["stragglers_killed_n"],
                                                        ",".join(r["stragglers_killed"])))
        figures = ", ".join("%s %s" % (fmt_metric(f, r.get(f)), f)
                            for f, _, _ in metrics[case.mode])
        print("[%d/%d %4.0fs] %-34s %s%s" % (
            i, len(plan), time.monotonic() - t0, tag, figures,
            "  [" + "; ".join(flags) + "]" if flags else ""), file=sys.stderr)
    return results


def run_all(opts, plan, run, case_list, metrics, extra, base_key, logdir, out):
    """The plan run (run_plan), then its summary (summarize, add_cleanup).
    The results JSON's path goes to opts.out: `out`, or without --write a
    file of that name beside the logs, so that nothing in the repository
    changes. Returns (results, summary, seconds taken)."""
    opts.out = out if opts.write else os.path.join(logdir, os.path.basename(out))
    t0 = time.monotonic()
    print("%d runs; descriptor limit %d; logs in %s" % (len(plan), opts.nofile, logdir),
          file=sys.stderr)
    results = run_plan(plan, run, metrics, t0)
    summary = summarize(results, case_list, metrics, extra, base_key)
    add_cleanup(summary, results)
    return results, summary, time.monotonic() - t0


def add_cleanup(summary, results):
    """Each summary row's most orphans at server exit, the longest they
    took to go, and the stragglers killed over its repetitions."""
    for s in summary.values():
        runs = [r for r in results if r["case"] == s["case"] and r["server"] == s["server"]]
        s["orphans"] = max([r.get("orphans_at_exit", 0) for r in runs] or [0])
        s["orphans_gone_s"] = max([r.get("orphans_gone_s", 0) for r in runs] or [0])
        s["stragglers"] = sum(r.get("stragglers_killed_n", 0) for r in runs)


def save(opts, meta, total, servers, summary, results, more=None):
    """The results JSON, to opts.out: the run's settings, the servers,
    `more`, the summary and every run."""
    payload = {"meta": meta, "quick": opts.quick, "reps": opts.reps,
               "duration_s": opts.duration, "warmup_s": opts.warmup, "hold_s": opts.hold,
               "server_cpu": opts.server_cpu, "loadgen_cpu": opts.loadgen_cpu,
               "total_s": round(total, 1),
               "servers": {k: v["about"] for k, v in servers.items()}}
    payload.update(more or {})
    payload.update({"summary": summary, "runs": results})
    os.makedirs(os.path.dirname(opts.out), exist_ok=True)
    with open(opts.out, "w") as f:
        json.dump(payload, f, indent=1)
        f.write("\n")


def finish(opts, results, total, section, markers, chart, what):
    """Print the section; with --write put it in BENCHMARKS.md
    (`markers`: write_benchmarks_md's begin, end, heading and after) and
    `chart` (path, SVG text) in place, and say so (`what`: the section's
    name). Returns the exit status: 1 when a run failed or stragglers were
    killed."""
    print(section)
    if opts.write:
        write_benchmarks_md(section, *markers)
        with open(chart[0], "w") as f:
            f.write(chart[1])
        print("wrote BENCHMARKS.md's %s section, %s and %s" % (
            what, os.path.relpath(chart[0], ROOT), os.path.relpath(opts.out, ROOT)),
            file=sys.stderr)
    else:
        print("wrote %s (the repository untouched)" % opts.out, file=sys.stderr)
    failed = sum(1 for r in results if r.get("failed"))
    stragglers = sum(r.get("stragglers_killed_n", 0) for r in results)
    print("%d runs in %.0f s; %d failed; %d stragglers killed"
          % (len(results), total, failed, stragglers), file=sys.stderr)
    return 1 if failed or stragglers else 0


# ---------------------------------------------------------------- figures


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results, case_list, metrics, extra, base_key):
    """Medians per case and server of `metrics[case.mode]`'s fields, of
    `extra` and of p50 and p99, each with every repetition's figure
    (`FIELD_all`); then each metric's ratio to `base_key`'s median in the
    case's base (`FIELD_ratio`) and, paired, each repetition's to the base's
    of the same repetition (`FIELD_ratio_all`)."""
    def rep_of(case_key, server, rep):
        for r in results:
            if (r["case"], r["server"], r.get("rep")) == (case_key, server, rep):
                return None if r.get("failed") else r
        return None

    summary = {}
    for case in case_list:
        for key in case.servers:
            runs = [r for r in results if r["case"] == case.key and r["server"] == key]
            good = [r for r in runs if not r.get("failed")]
            s = {"case": case.key, "server": key, "reps": len(runs), "ok": len(good),
                 "failed": [r["failed"] for r in runs if r.get("failed")],
                 "client_limited": sum(bool(r.get("client_limited")) for r in good) * 2
                 > len(good) if good else False}
            for field in [m[0] for m in metrics[case.mode]] + extra + ["p50", "p99"]:
                if field in ("p50", "p99"):
                    vals = [(r.get("latency_us") or {}).get(field) for r in good]
                else:
                    vals = [r.get(field) for r in good]
                s[field] = median(vals)
                s[field + "_all"] = vals
            summary["%s/%s" % (case.key, key)] = s
    # Ratios to the base's median in the same run (and per repetition).
    for case in case_list:
        base = summary.get("%s/%s" % (case.base, base_key))
        for key in case.servers:
            s = summary["%s/%s" % (case.key, key)]
            for field, _, _ in metrics[case.mode]:
                b = base.get(field) if base else None
                s[field + "_ratio"] = (s[field] / b) if b and s[field] is not None else None
                # Paired: each repetition against the base's of the same
                # repetition (None where either failed).
                s[field + "_ratio_all"] = [
                    (r.get(field) / w.get(field)) if r and w and r.get(field) is not None
                    and w.get(field) else None
                    for r, w in ((rep_of(case.key, key, i), rep_of(case.base, base_key, i))
                                 for i in range(1, s["reps"] + 1))]
    return summary


def fmt_count(v):
    if v is None:
        return "–"
    if v >= 10e6:
        return "%.1f M" % (v / 1e6)
    if v >= 1e6:
        return "%.2f M" % (v / 1e6)
    if v >= 100e3:
        return "%.0f k" % (v / 1e3)
    if v >= 10e3:
        return "%.1f k" % (v / 1e3)
    return "{:,.0f}".format(v)


def fmt_bytes(v):
    if v is None:
        return "–"
    if v >= 10 * 1024:
        return "%.0f KiB" % (v / 1024)
    if v >= 1024:
        return "%.1f KiB" % (v / 1024)
    return "%.0f B" % v


def fmt_ratio(r, higher_better):
    """2.71x; memory (lower is better) also as a fraction: 0.032x (1/31)."""
    if r is None:
        return "–"
    if higher_better or r > 0.5:
        return "%.2fx" % r if r < 10 else "%.1fx" % r
    return "%.3fx (1/%.0f)" % (r, 1 / r) if r > 0 else "0x"


def fmt_pct(v):
    return "–" if v is None else "%.0f %%" % (100 * v)


def fmt_us(v):
    if v is None:
        return "–"
    if v >= 10000:
        return "%.0f ms" % (v / 1000)
    if v >= 1000:
        return "%.1f ms" % (v / 1000)
    return "%.0f µs" % v


def fmt_spread(vals, fmt):
    vals = [v for v in vals if v is not None]
    if len(vals) < 2:
        return "–"
    return "%s – %s (%.0f %%)" % (fmt(min(vals)), fmt(max(vals)),
                                  100 * (max(vals) - min(vals)) / statistics.median(vals))


def fmt_metric(field, v):
    if field.endswith("_us"):
        return fmt_us(v)  # microseconds: latencies
    if field.endswith("_util"):
        return fmt_pct(v)  # a share of a core
    return fmt_bytes(v) if field.endswith("_bytes") else fmt_count(v)


def environment():
    """Date, CPU, kernel, rustc, Python and the commit (marked when the
    tree has uncommitted changes)."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else "?"
    except OSError:
        pass
    commit = output("git", "rev-parse", "--short", "HEAD") or "?"
    if output("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": os.uname().release,
        "rustc": output("rustc", "--version") or "?",
        "python": sys.version.split()[0],
        "commit": commit,
    }


def output(*args):
    """A command's stdout (run in the repository), stripped; "" when it
    cannot run."""
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def ratio_cell(s, field, higher, base_key):
    """The ratio to the base; the base's own row says so."""
    if s["server"] == base_key:
        return "(base)"
    return fmt_ratio(s.get(field + "_ratio"), higher)


def cell(s, field, higher):
    """A figure, its spread mark and failures."""
    if s is None or s["ok"] == 0:
        return "failed" if s and s["failed"] else "–"
    text = fmt_metric(field, s[field])
    if s["client_limited"] and field in ("per_server_cpu_s", "rate"):
        text += " †"
    if s["failed"]:
        text += " (%d of %d failed)" % (len(s["failed"]), s["reps"])
    return text


def figures(s, base_key, *fields):
    """The cells of `fields` ((field, higher is better) each) in a row:
    the figure, then its ratio to the base, for each."""
    out = []
    for field, higher in fields:
        out += [cell(s, field, higher), ratio_cell(s, field, higher, base_key)]
    return out


def table_rows(summary, cases, cells, marks, limits=True):
    """A markdown row per case and server, `cells(case, key, s)` its cells.
    `marks` (a dict) gathers whether a row was client-limited ("limited";
    not counted with limits=False) or lost a run ("failed")."""
    out = []
    for case in cases:
        for key in case.servers:
            s = summary["%s/%s" % (case.key, key)]
            if limits:
                marks["limited"] = marks.get("limited", False) or s["client_limited"]
            marks["failed"] = marks.get("failed", False) or bool(s["failed"])
            out.append("| %s |" % " | ".join(cells(case, key, s)))
    return out


def quick_note(prog):
    return ["> **Quick run** (`%s --quick`: 1 repetition, short windows): smoke-test "
            "figures, noisy; not the benchmark." % prog, ""]


def section_end(marks, chart, spread, goal_list, raw, end):
    """The section after its tables: the client-limited and failed-run
    notes (as `marks` says), the chart's line, the spread table, the goals
    ((text, met) each), the raw results' path and the end marker."""
    out = []
    if marks.get("limited"):
        out += ["† client-limited: the load generator used more than 90 % of its core, so "
                "the server may have idled; per CPU-second stays comparable, per second "
                "does not.", ""]
    if marks.get("failed"):
        out += ["A failed run (loadgen errors, or no result) is left out of the medians.", ""]
    out += [chart, ""] + spread
    out += ["### Against the goals", "",
            "Checked by the script against this run's medians:", ""]
    for text, met in goal_list:
        out.append("- %s %s" % ("✅" if met else "❌", text))
    out += ["", "Raw results: `%s`." % raw, "", end]
    return out


def bar(summary, case, key, servers, field, higher, base_key, base_word, name=None):
    """A chart bar (bar_chart) for a server in a case: its median of
    `field`, its colour, the figure and (but for the base) its ratio to the
    base's, "(2.1x BASE_WORD)"."""
    s = summary["%s/%s" % (case.key, key)]
    v = s.get(field)
    text = fmt_metric(field, v)
    r = s.get(field + "_ratio")
    if key != base_key and r is not None:
        text += "  (%s %s)" % (fmt_ratio(r, higher), base_word)
    return (name or servers[key]["label"], v, servers[key]["color"], text)


def shortfalls(summary, case_list, metrics, servers, base_key, misses):
    """The rows whose median ratio misses a goal, and the single
    repetitions that do: two lists of texts. `misses(case, field, higher,
    ratio)` says whether a ratio misses (fields it does not check: False)."""
    behind = []
    single = []
    for case in case_list:
        for key in case.servers:
            if key == base_key:
                continue
            s = summary["%s/%s" % (case.key, key)]
            for field, label, higher in metrics[case.mode]:
                r = s.get(field + "_ratio")
                if r is None:
                    continue
                if misses(case, field, higher, r):
                    behind.append("%s, %s, %s: %s" % (case.title, servers[key]["label"],
                                                      label, fmt_ratio(r, higher)))
                for i, x in enumerate(s.get(field + "_ratio_all") or [], 1):
                    if x is not None and misses(case, field, higher, x):
                        single.append("%s, %s, %s, repetition %d: %s" % (
                            case.title, servers[key]["label"], label, i, fmt_ratio(x, higher)))
    return behind, single


def spread_table(summary, case_list, metrics, servers, base_key, base_name, headline, grace):
    """The markdown lines of the "Spread between repetitions, and cleanup"
    subsection: per case and server, the headline figure's (the field
    `headline(case)` names) lowest and highest repetition, each
    repetition's ratio to the base's, orphans and stragglers."""
    out = ["### Spread between repetitions, and cleanup", "",
           "The headline figure's lowest and highest repetition (and their gap over the "
           "median); after each run the server got SIGTERM and every process it had "
           "started had to be gone within %s s, else it was killed (stragglers)." % grace,
           "", "Vs %s, each repetition: the headline over %s's in the same "
           "repetition (the two ran one after the other)." % (base_name, base_name), "",
           "| case | server | headline, min – max | vs %s, each repetition | "
           "orphans at server exit (gone within) | stragglers killed |" % base_name,
           "| --- | --- | --- | --- | --- | --- |"]
    for case in case_list:
        field = headline(case)
        for key in case.servers:
            s = summary["%s/%s" % (case.key, key)]
            orphans = s.get("orphans", 0)
            higher = dict((f, h) for f, _, h in metrics[case.mode])[field]
            paired = "(base)" if key == base_key else ", ".join(
                "–" if r is None else fmt_ratio(r, higher).split(" ")[0]
                for r in s.get(field + "_ratio_all", []))
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                case.title, servers[key]["label"],
                fmt_spread(s[field + "_all"], lambda v: fmt_metric(field, v)), paired,
                ("%d (%.1f s)" % (orphans, s.get("orphans_gone_s", 0))) if orphans else "0",
                s.get("stragglers", 0)))
    out.append("")
    return out


def bar_chart(title, servers, groups, footer, quick):
    """An SVG of horizontal bars: a title (marked on a quick run), the
    servers' labels and colours as the legend, then
    one block per group (title, figure's label, higher is better, bars), each
    bar (name, value, colour, text) scaled to the largest in its group, a
    value of None drawn as "failed"; the footer last."""
    bar_h, gap, pad, left, width, bar_w = 16, 4, 14, 220, 900, 420
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quick:
        title += " (quick run: noisy)"
    o = ['<text x="16" y="26" font-size="17" font-weight="bold">%s</text>' % esc(title)]
    x = 16
    for label, color in [(sv["label"], sv["color"]) for sv in servers.values()]:
        o.append('<rect x="%d" y="40" width="14" height="14" fill="%s"/>' % (x, color))
        o.append('<text x="%d" y="52">%s</text>' % (x + 20, esc(label)))
        x += 44 + 7 * len(label)
    y = 76
    for group_title, label, higher, bars in groups:
        o.append('<text x="16" y="%d" font-weight="bold">%s</text>' % (y + 12, esc(group_title)))
        o.append('<text x="16" y="%d" fill="#555" font-size="12">%s (%s is better)</text>'
                 % (y + 28, esc(label), "higher" if higher else "lower"))
        top = max([v for _, v, _, _ in bars if v] or [1])
        by = y + 40
        for name, v, color, text in bars:
            o.append('<text x="%d" y="%d" text-anchor="end" font-size="12">%s</text>'
                     % (left - 8, by + 12, esc(name)))
            if not v:
                o.append('<text x="%d" y="%d" fill="#777">failed</text>' % (left, by + 12))
            else:
                w = max(1.0, bar_w * v / top)
                o.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>'
                         % (left, by, w, bar_h, color))
                o.append('<text x="%.1f" y="%d">%s</text>' % (left + w + 6, by + 12, esc(text)))
            by += bar_h + gap
        y = by + pad
        o.append('<line x1="16" x2="%d" y1="%d" y2="%d" stroke="#ddd"/>'
                 % (width - 16, y - pad / 2, y - pad / 2))
    height = y + 16
    o.append('<text x="16" y="%d" fill="#555" font-size="11">%s</text>'
             % (height - 8, esc(footer)))
    o.append("</svg>")
    head = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="13">'
            % (width, height, width, height),
            '<rect width="100%" height="100%" fill="#ffffff"/>']
    return "\n".join(head + o) + "\n"


def write_benchmarks_md(section, begin, end, heading, after=None):
    """Replace the text between the markers `begin` and `end` of
    BENCHMARKS.md. Without them, put the heading and the section after the
    section whose end marker is `after` (before the next `## ` heading, or
    at the end of the file), or, with no `after` or it not found, at the
    end."""
    with open(BENCHMARKS_MD) as f:
        text = f.read()
    if begin in text and end in text:
        start = text.index(begin)
        stop_at = text.index(end) + len(end)
        text = text[:start] + section + text[stop_at:]
    else:
        at = len(text)
        if after and after in text:
            nxt = text.find("\n## ", text.index(after))
            at = nxt + 1 if nxt >= 0 else len(text)
        head, tail = text[:at].rstrip("\n"), text[at:]
        text = head + "\n\n" + heading + "\n\n" + section + "\n" + ("\n" + tail if tail else "")
    with open(BENCHMARKS_MD, "w") as f:
        f.write(text)
