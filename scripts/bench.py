#!/usr/bin/env python3
"""Regenerates docs/benchmarks.md and its plots from scratch.

Builds fix-bench, the QuickFIX C++ and fixer peers (engine/bench/peers) and the socket
shims; measures every scenario --repeats times, interleaved, in one run on this machine,
with the same load generator against every acceptor; writes the medians, the ratios to
the floor and to each peer, the goals, and one latency-distribution plot per engine.

Run through scripts/bench.sh (it provides matplotlib). Never part of .ci/run.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PLOTS = DOCS / "bench"
BUILD = ROOT / "target" / "bench-peers"
PEERS = ROOT / "engine" / "bench" / "peers"
FIX_BENCH = ROOT / "target" / "release" / "fix-bench"
FIXER_MANIFEST = PEERS / "fixer-exec" / "Cargo.toml"
ENGINES = ("fix-engine", "QuickFIX C++", "fixer")
# Open-loop rates held for SUSTAIN_SECONDS each, with the peak resident memory.
SUSTAIN_RATES = (10000, 20000, 40000)
SUSTAIN_SECONDS = 20
# Runs that failed, with the generator's last words (a failed run is retried once).
FAILURES = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("+", " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def output(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


# ---------------------------------------------------------------- building


def build():
    run(["cargo", "build", "--release", "-p", "fix-bench"], cwd=ROOT)
    BUILD.mkdir(parents=True, exist_ok=True)
    if not Path("/usr/include/quickfix/Application.h").exists():
        if os.geteuid() != 0:
            sys.exit("error: QuickFIX C++ headers missing: install Debian's libquickfix-dev")
        run(["apt-get", "install", "-y", "-q", "libquickfix-dev"])
    quickfix = BUILD / "quickfix-exec"
    run(["g++", "-O2", "-std=gnu++14", "-Wno-deprecated", "-o", quickfix,
         PEERS / "quickfix" / "exec_acceptor.cpp", "-lquickfix", "-lpthread"])
    shims = []
    for src in (ROOT / "tests" / "interop" / "loopback_bind.c", PEERS / "nodelay_accept.c"):
        lib = BUILD / (src.stem + ".so")
        run(["cc", "-O2", "-shared", "-fPIC", "-o", lib, src, "-ldl"])
        shims.append(str(lib))
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target" / "peers"))
    run(["cargo", "build", "--release", "--manifest-path", FIXER_MANIFEST], env=env)
    fixer = ROOT / "target" / "peers" / "release" / "fixer-exec"
    meta = json.loads(output(["cargo", "metadata", "--format-version", "1",
                              "--manifest-path", FIXER_MANIFEST], env=env))
    pkg = next(p for p in meta["packages"] if p["name"] == "fixer")
    fixer_dict = Path(pkg["manifest_path"]).parent / "src" / "spec" / "FIX44.xml"
    dictionaries = os.environ.get("FIX_QUICKFIX_DICTIONARIES")
    if not dictionaries or not (Path(dictionaries) / "FIX44.xml").is_file():
        sys.exit("error: FIX_QUICKFIX_DICTIONARIES names no folder with QuickFIX's FIX44.xml: run scripts/bench.sh")
    shutil.copyfile(Path(dictionaries) / "FIX44.xml", BUILD / "FIX44.xml")
    return {
        "quickfix": quickfix, "fixer": fixer, "shims": ":".join(shims),
        "quickfix_dict": BUILD / "FIX44.xml", "fixer_dict": fixer_dict,
        "fixer_version": pkg["version"],
    }


# ---------------------------------------------------------------- machine


def machine(tools):
    def first(cmd, default="?"):
        try:
            return output(cmd).strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            return default

    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split()[1]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": f"{int(mem) // (1024 * 1024)} GiB",
        "kernel": platform.release(),
        "rustc": first(["rustc", "-V"]),
        "gxx": first(["g++", "--version"]),
        "quickfix": first(["dpkg-query", "-W", "-f", "${Version}", "libquickfix-dev"]),
        "fixer": tools["fixer_version"],
        "commit": first(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
    }


def fdatasync_latency(samples=200):
    """Median and p99 of write(300 B)+fdatasync on the disk the journal uses, in µs."""
    BUILD.mkdir(parents=True, exist_ok=True)
    times = []
    with tempfile.NamedTemporaryFile(dir=BUILD) as f:
        for _ in range(samples):
            t = time.perf_counter_ns()
            f.write(b"x" * 300)
            f.flush()
            os.fdatasync(f.fileno())
            times.append((time.perf_counter_ns() - t) / 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


# ---------------------------------------------------------------- codec


def codec_benches():
    env = dict(os.environ, FIX_DICTIONARY_DIR=str(BUILD))
    out = output(["cargo", "bench", "-p", "fix-codec", "--bench", "codec"], cwd=ROOT, env=env)
    allocs = {}
    for line in out.splitlines():
        line = line.strip()
        if line.count(":") == 1 and "/" in line:
            key, n = line.split(":")
            try:
                allocs[key.strip()] = float(n)
            except ValueError:
                pass
    results = {}
    for est in (ROOT / "target" / "criterion").glob("*/*/new/estimates.json"):
        bench = json.loads((est.parent / "benchmark.json").read_text())
        key = f"{bench['group_id']}/{bench['function_id']}"
        median = json.loads(est.read_text())["median"]["point_estimate"]
        results[key] = {"ns": median, "allocs": allocs.get(key)}
    return results


# ---------------------------------------------------------------- peers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    """A peer acceptor process, started on the engine core with both shims preloaded."""

    def __init__(self, label, binary, store, dictionary, tools, core, sessions=50):
        self.label, self.args = label, (binary, store, dictionary, tools, core)
        self.sessions = sessions
        self.start()

    def restart(self):
        log(f"  restarting {self.label}")
        self.stop()
        self.start()

    def start(self):
        binary, store, dictionary, tools, core = self.args
        label, self.port = self.label, free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-peer-", dir=BUILD)
        cmd = [str(binary), str(self.port), store, self.dir, str(dictionary), str(self.sessions)]
        if core is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(core)] + cmd
        env = dict(os.environ, LD_PRELOAD=tools["shims"])
        # Its output goes to a file: a pipe nobody reads would stall it once full.
        self.log = Path(self.dir) / "output.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"error: {label} exited at start: {self.log.read_text()[-500:]}")
            if "listening" in self.log.read_text():
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        sys.exit(f"error: {label} is not listening on {self.port}")

    def peak_rss_kb(self):
        """The peer's peak resident memory so far (VmHWM), KiB."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- scenarios


def scenarios(quick, cores):
    pin_engine = ["--engine-cores", "0"] if cores >= 2 else []
    pin_client = ["--client-core", "1"] if cores >= 2 else []
    best = ["--busy-poll"] + pin_engine
    n = (lambda full, small: str(small if quick else full))
    closed = ["--messages", n(20000, 300), "--warmup", n(2000, 50)]
    durable = ["--messages", n(3000, 100), "--warmup", n(300, 20)]
    opened = ["--rate", "10000", "--messages", n(50000, 500), "--warmup", n(5000, 50)]
    many = ["--sessions", "50", "--messages", n(50000, 500), "--warmup", n(5000, 100)]
    thousand = ["--sessions", "1000", "--messages", n(300000, 3000), "--warmup", n(30000, 1000)]
    search = ["--seconds", n(1.0, 0.2), "--steps", n(5, 1), "--warmup", n(1000, 50),
              "--trials", n(3, 1)]
    # Far above any acceptor's capacity: the achieved rate is what it can process.
    saturate = ["--rate", "500000", "--messages", n(100000, 500), "--warmup", n(5000, 50)]
    if quick:
        search += ["--ceiling", "4000"]
    # (id, title, engine, store, how: "floor" | "rtt" | "max-rate", fix-bench arguments)
    s = [("floor", "TCP floor (busy-polling echo)", "floor", "-", "floor",
          ["--messages", n(20000, 300), "--warmup", n(2000, 50)])]
    s += [
        ("closed-memory-block", "closed loop, 1 session, memory", "fix-engine", "memory",
         "rtt", closed),
        ("closed-memory-block-pinned", "closed loop, 1 session, memory", "fix-engine", "memory",
         "rtt", closed + pin_engine),
        ("closed-memory", "closed loop, 1 session, memory", "fix-engine", "memory", "rtt",
         closed + best),
        ("closed-memory", "closed loop, 1 session, memory", "QuickFIX C++", "memory", "rtt", closed),
        ("closed-memory", "closed loop, 1 session, memory", "fixer", "memory", "rtt", closed),
        ("closed-durable", "closed loop, 1 session, durable store", "fix-engine", "journal", "rtt",
         durable + best),
        ("closed-durable", "closed loop, 1 session, durable store", "fix-engine", "journal-no-fsync",
         "rtt", durable + best),
        # `delivery = "early"`: one commit covers the order and its reports. Busy-polling
        # and pinned, the journal's sync thread shares the engine's core and the engine
        # yields it while it spins on the commit; blocking for comparison.
        ("closed-durable", "closed loop, 1 session, durable store", "fix-engine", "journal", "rtt",
         durable),
        ("closed-durable", "closed loop, 1 session, durable store", "fix-engine", "journal", "rtt",
         durable + ["--early"]),
        ("closed-durable", "closed loop, 1 session, durable store", "fix-engine", "journal", "rtt",
         durable + best + ["--early"]),
        ("closed-durable", "closed loop, 1 session, durable store", "QuickFIX C++", "file", "rtt",
         durable),
        ("closed-durable", "closed loop, 1 session, durable store", "fixer", "file", "rtt", durable),
        ("closed-replicated", "closed loop, 1 session, replicated", "fix-engine", "replicated",
         "rtt", durable + best),
        ("open-memory", "open loop 10 000 orders/s, 1 session, memory", "fix-engine", "memory",
         "rtt", opened + best),
        ("open-memory", "open loop 10 000 orders/s, 1 session, memory", "fix-engine", "memory",
         "rtt", opened + pin_engine),
        ("open-memory", "open loop 10 000 orders/s, 1 session, memory", "QuickFIX C++", "memory",
         "rtt", opened),
        ("open-memory", "open loop 10 000 orders/s, 1 session, memory", "fixer", "memory", "rtt",
         opened),
        ("closed-50", "closed loop, 50 sessions, memory", "fix-engine", "memory", "rtt", many + best),
        ("closed-50", "closed loop, 50 sessions, memory", "QuickFIX C++", "memory", "rtt", many),
        ("closed-50", "closed loop, 50 sessions, memory", "fixer", "memory", "rtt", many),
        ("sessions-1000", "closed loop, 1000 sessions, memory", "fix-engine", "memory", "rtt",
         thousand + pin_engine),
        # fixer with 1000 sessions was not listening after 120 s: not run here.
        ("sessions-1000", "closed loop, 1000 sessions, memory", "QuickFIX C++", "memory", "rtt",
         thousand),
    ]
    # One noisy session beside 999 measured ones: flooding orders as fast as its socket
    # takes them, or never reading its answers. Fairness must hold for the other 999.
    for noise, what in (("flood", "a flooding"), ("stalled", "a stalled")):
        beside = ["--sessions", "999", "--noise", noise, "--messages", n(300000, 3000),
                  "--warmup", n(30000, 1000)]
        title = f"closed loop, 999 sessions beside {what} one, memory"
        s += [(f"sessions-1000-{noise}", title, "fix-engine", "memory", "rtt",
               beside + pin_engine),
              (f"sessions-1000-{noise}", title, "QuickFIX C++", "memory", "rtt", beside)]
    s += [
        ("max-memory", "max sustainable rate, 1 session, memory", "fix-engine", "memory",
         "max-rate", search + best),
        ("max-memory", "max sustainable rate, 1 session, memory", "fix-engine", "memory",
         "max-rate", search + pin_engine),
        ("max-memory", "max sustainable rate, 1 session, memory", "QuickFIX C++", "memory",
         "max-rate", search),
        ("max-memory", "max sustainable rate, 1 session, memory", "fixer", "memory", "max-rate",
         search),
        ("max-durable", "max sustainable rate, 1 session, durable store", "fix-engine", "journal",
         "max-rate", search + best),
        ("max-durable", "max sustainable rate, 1 session, durable store", "fix-engine",
         "journal-no-fsync", "max-rate", search + best),
        ("max-durable", "max sustainable rate, 1 session, durable store", "fix-engine", "journal",
         "max-rate", search + ["--early"]),
        ("max-durable", "max sustainable rate, 1 session, durable store", "fix-engine", "journal",
         "max-rate", search + best + ["--early"]),
        ("max-durable", "max sustainable rate, 1 session, durable store", "QuickFIX C++", "file",
         "max-rate", search),
        ("max-durable", "max sustainable rate, 1 session, durable store", "fixer", "file",
         "max-rate", search),
        ("max-replicated", "max sustainable rate, 1 session, replicated", "fix-engine",
         "replicated", "max-rate", search + best),
        ("saturation", "capacity, 1 session, memory", "fix-engine", "memory", "rtt",
         saturate + best),
        ("saturation", "capacity, 1 session, memory", "QuickFIX C++", "memory", "rtt", saturate),
        ("saturation", "capacity, 1 session, memory", "fixer", "memory", "rtt", saturate),
    ]
    for rate in SUSTAIN_RATES:
        sustained = ["--rate", str(rate), "--messages", n(rate * SUSTAIN_SECONDS, 500),
                     "--warmup", n(rate, 50)]
        title = f"sustained {SUSTAIN_SECONDS} s at {rate:,} orders/s, 1 session, memory".replace(",", " ")
        sid = f"sustain-{rate}"
        s += [
            (sid, title, "fix-engine", "memory", "rtt", sustained + pin_engine),
            (sid, title, "fix-engine", "memory", "rtt", sustained + best),
            (sid, title, "QuickFIX C++", "memory", "rtt", sustained),
            (sid, title, "fixer", "memory", "rtt", sustained),
        ]
        # Limit orders rest in the exec simulator: its book grows by one order each.
        s.append((f"sustain-resting-{rate}", title + ", resting limit orders", "fix-engine",
                  "memory", "rtt", sustained + pin_engine + ["--limit"]))
    s.append(("hiccups", "the machine's own stalls", "machine", "-", "hiccups",
              ["--seconds", n(5, 0.5)]))
    return [(i, t, e, st, how, args + (pin_client if how not in ("floor", "hiccups") else []))
            for (i, t, e, st, how, args) in s]


def measure(scenario, peer):
    sid, _, engine, store, how, args = scenario

    def command():
        cmd = [str(FIX_BENCH), how, "--json"] + args
        if how == "rtt":
            cmd.append("--no-floor")
        if engine == "fix-engine" and how not in ("floor", "hiccups"):
            cmd += ["--store", store]
        elif peer is not None:
            cmd += ["--connect", f"127.0.0.1:{peer.port}", "--label", engine]
        return cmd

    for attempt in (1, 2):
        cmd = command()
        log("+", " ".join(cmd[1:]))
        env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode == 0:
            break
        why = " ".join(done.stderr.strip().splitlines()[-4:])
        if peer is not None:
            if peer.proc.poll() is not None:
                why += f" [{peer.label} exited with {peer.proc.returncode}]"
            said = peer.log.read_text(errors="replace").strip().splitlines()[-2:]
            if said:
                why += f" [{peer.label} said: {' / '.join(said)}]"
        log(f"  failed (attempt {attempt}): {why}")
        FAILURES.append(f"{engine}, {scenario[1]} ({store}): {why}")
        # A peer that failed may still be busy with the backlog or hold the session:
        # the next run gets a fresh process.
        if peer is not None:
            peer.restart()
    else:
        return None
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if how == "hiccups":
        return {"cores": rows}
    row = rows[0]
    if how == "rtt" and len(rows) > 1:
        row["uncorrected"] = rows[1]
    return row


def measure_all(scens, repeats, tools, cores):
    peer_core = 0 if cores >= 2 else None
    results = {}
    peers = {}
    try:
        for rep in range(repeats):
            for sc in scens:
                sid, _, engine, store, how, _ = sc
                fresh = sid.startswith("sustain") or sid.startswith("sessions")
                long_run = how == "max-rate" or fresh
                if long_run and rep >= max(3, repeats // 2 + 1):
                    continue  # long scenarios: three runs of each are enough
                peer = None
                if engine in ("QuickFIX C++", "fixer"):
                    args = sc[5]
                    sessions = max(50, int(args[args.index("--sessions") + 1])
                                   if "--sessions" in args else 1)
                    if "--noise" in args:
                        sessions += 1  # the neighbour's CompID comes after the measured ones
                    key = (engine, store, sessions)
                    if key not in peers:
                        binary = tools["quickfix" if engine == "QuickFIX C++" else "fixer"]
                        dictionary = tools["quickfix_dict" if engine == "QuickFIX C++" else "fixer_dict"]
                        peers[key] = Peer(engine, binary, store, dictionary, tools, peer_core,
                                          sessions)
                    peer = peers[key]
                if peer is not None and fresh:
                    peer.restart()  # a fresh process: its peak memory is this run's
                row = measure(sc, peer)
                if row is not None and fresh:
                    row["peak_rss_kb"] = (peer.peak_rss_kb() if peer is not None
                                          else row.get("process_peak_rss_kb"))
                if row is not None:
                    results.setdefault((sid, engine, store, tuple(sc[5])), []).append(row)
    finally:
        for p in peers.values():
            p.stop()
    return results


# ---------------------------------------------------------------- summary


METRICS = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us", "per_second")
HICCUP_METRICS = ("lost_percent", "per_second_over_100us", "per_second_over_1ms", "max_us")


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def summarize(scens, results):
    """One entry per scenario row: medians over runs and the run to plot."""
    out = []
    for sc in scens:
        sid, title, engine, store, how, args = sc
        rows = results.get((sid, engine, store, tuple(args)))
        if not rows:
            continue
        entry = {"id": sid, "title": title, "engine": engine, "store": store, "how": how,
                 "args": args, "runs": len(rows)}
        if how == "hiccups":
            cores = {}
            for r in rows:
                for c in r["cores"]:
                    cores.setdefault(c["core"], []).append(c)
            entry["cores"] = [
                {"core": k, **{m: statistics.median(c[m] for c in cs) for m in HICCUP_METRICS}}
                for k, cs in sorted(cores.items())]
            out.append(entry)
            continue
        for m in METRICS:
            entry[m] = med(rows, m)
        rss = [r["peak_rss_kb"] for r in rows if r.get("peak_rss_kb")]
        if rss:
            entry["peak_rss_kb"] = statistics.median(rss)
        logons = [r["logons_ms"] for r in rows if r.get("logons_ms") is not None]
        if logons:
            entry["logons_ms"] = statistics.median(logons)
        if how == "max-rate":
            entry["max_rate"] = statistics.median(r["max_rate"] for r in rows)
            entry["base_p99_us"] = statistics.median(r["base_p99_us"] for r in rows)
        p50 = sorted(rows, key=lambda r: r["p50_us"])[len(rows) // 2]
        entry["distribution"] = p50.get("distribution", [])
        entry["variant"] = describe_variant(args)
        if rows[0].get("uncorrected"):
            entry["uncorrected_p99_us"] = statistics.median(r["uncorrected"]["p99_us"] for r in rows)
        out.append(entry)
    return out


def describe_variant(args):
    parts = []
    if "--busy-poll" in args:
        parts.append("busy-poll")
    if "--engine-cores" in args:
        parts.append("pinned")
    variant = ", ".join(parts) if parts else "blocking"
    return variant + (", early delivery" if "--early" in args else "")


def fmt(v):
    if v >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.1f}"


def ratio_note(peer_value, ours, higher_is_better):
    if not ours or not peer_value:
        return ""
    r = (ours / peer_value) if higher_is_better else (peer_value / ours)
    return f" ({r:.2f}×)"


def reference(entries, store=None):
    """fix-engine's row the peers are compared with: busy-poll, pinned, and in the
    durable tables the journal without fsync (the peers' file stores do not sync)."""
    mine = [e for e in entries if e["engine"] == "fix-engine" and e["variant"] == "busy-poll, pinned"]
    return next((e for e in mine if store is None or e["store"] == store), mine[0] if mine else None)


def table(entries, floor, store=None):
    ours = reference(entries, store)
    head = ("| engine | store | receive | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs "
            "| mean µs | orders/s | runs |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for e in entries:
        cells = []
        for m in METRICS:
            note = ""
            if ours is not None and e is not ours and e["engine"] != "fix-engine":
                note = ratio_note(e[m], ours[m], m == "per_second")
            cells.append(fmt(e[m]) + note)
        receive = e["variant"] if e["engine"] == "fix-engine" else "its own"
        lines.append(f"| {e['engine']} | {e['store']} | {receive} | " + " | ".join(cells)
                     + f" | {e['runs']} |")
    if floor and entries and entries[0]["how"] == "rtt" and "open" not in entries[0]["id"]:
        lines.append(f"| TCP floor | – | busy-poll | {fmt(floor['p50_us'])} | {fmt(floor['p90_us'])} "
                     f"| {fmt(floor['p99_us'])} | {fmt(floor['p999_us'])} | {fmt(floor['max_us'])} "
                     f"| {fmt(floor['mean_us'])} | {fmt(floor['per_second'])} | {floor['runs']} |")
    return "\n".join(lines)


def max_table(entries, store=None):
    ours = max((e for e in entries if e["engine"] == "fix-engine"
                and (store is None or e["store"] == store)),
               key=lambda e: e["max_rate"], default=None)
    lines = ["| engine | store | receive | max sustainable orders/s | messages/s (in + out) "
             "| p99 there µs | unloaded p99 µs | runs |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for e in entries:
        note = ""
        if ours is not None and e["engine"] != "fix-engine":
            note = ratio_note(e["max_rate"], ours["max_rate"], True)
        receive = e["variant"] if e["engine"] == "fix-engine" else "its own"
        lines.append(f"| {e['engine']} | {e['store']} | {receive} | {fmt(e['max_rate'])}{note} "
                     f"| {fmt(e['max_rate'] * 3)} | {fmt(e['p99_us'])} | {fmt(e['base_p99_us'])} "
                     f"| {e['runs']} |")
    return "\n".join(lines)


def plot(summary, floor):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FixedFormatter

    PLOTS.mkdir(parents=True, exist_ok=True)
    files = {}
    ticks = [50, 90, 99, 99.9, 99.99]
    x = lambda p: 1 / max(1e-6, 1 - p / 100)
    for engine in ENGINES:
        fig, ax = plt.subplots(figsize=(8, 5))
        drew = False
        for e in summary:
            if (e["engine"] != engine or e["how"] != "rtt" or not e["distribution"]
                    or e["id"] == "saturation" or e["id"].startswith("sustain")):
                continue
            if engine == "fix-engine" and e["variant"] == "blocking" and e["id"] != "closed-memory-block":
                continue
            pts = [(x(p), v) for p, v in e["distribution"] if p < 99.999]
            label = f"{e['title']} ({e['store']}" + (f", {e['variant']}" if engine == "fix-engine" else "") + ")"
            ax.plot([a for a, _ in pts], [b for _, b in pts], label=label)
            drew = True
        if floor and floor["distribution"]:
            pts = [(x(p), v) for p, v in floor["distribution"] if p < 99.999]
            ax.plot([a for a, _ in pts], [b for _, b in pts], "k--", label="TCP floor")
        if not drew:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator([x(t) for t in ticks]))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{t}%" for t in ticks]))
        ax.xaxis.set_minor_locator(FixedLocator([]))
        ax.set_xlabel("percentile")
        ax.set_ylabel("round trip, µs (coordinated-omission corrected)")
        ax.set_title(f"{engine}: NewOrderSingle → ExecutionReport round trip")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        name = engine.lower().replace(" ", "-").replace("+", "p") + ".svg"
        fig.tight_layout()
        fig.savefig(PLOTS / name)
        plt.close(fig)
        files[engine] = f"bench/{name}"
    return files


# ---------------------------------------------------------------- the document


def goals(summary, codec, floor, sync):
    def get(sid, engine="fix-engine", variant="busy-poll, pinned", store=None):
        return next((e for e in summary if e["id"] == sid and e["engine"] == engine
                     and (engine != "fix-engine" or e["variant"] == variant)
                     and (store is None or e["store"] == store)), None)

    def best_rate(sid, store=None):
        mine = [e for e in summary if e["id"] == sid and e["engine"] == "fix-engine"
                and (store is None or e["store"] == store)]
        return max(mine, key=lambda e: e["max_rate"], default=None)

    rows = []

    def goal(what, target, value, ok, note=""):
        rows.append(f"| {what} | {target} | {value} | {'met' if ok else '**not met**'} | {note} |")

    nos = codec.get("parse/new_order_single")
    allocs = codec.get("parse+validate/new_order_single", {}).get("allocs")
    if nos:
        goal("parse NewOrderSingle", "≤ 300 ns, 0 allocations",
             f"{nos['ns']:.0f} ns, {allocs if allocs is not None else '?'} allocations",
             nos["ns"] <= 300 and allocs == 0)
    ours = get("closed-memory")
    if ours and floor:
        gap = ours["p50_us"] - floor["p50_us"]
        goal("RTT p50 vs the TCP floor", "≤ floor + 10 µs",
             f"{fmt(ours['p50_us'])} µs = floor {fmt(floor['p50_us'])} + {gap:.1f} µs", gap <= 10)
        goal("RTT p99", "≤ 3 × our p50", f"{fmt(ours['p99_us'])} µs = {ours['p99_us'] / ours['p50_us']:.2f} × p50",
             ours["p99_us"] <= 3 * ours["p50_us"], "closed loop, 1 session, memory store")
    cap = get("saturation")
    for sid, target, label, store in (("max-memory", 150000, "memory store, 1 session", None),
                                      ("max-durable", 50000, "durable journal (group commit)", "journal"),
                                      ("max-replicated", 25000, "replicated to a standby", None)):
        e = best_rate(sid, store)
        if e:
            note = (f"{e['variant']}; orders/s at p99 ≤ 2 × unloaded p99; an order is 1 message "
                    "in and 2 out, so messages/s is 3 × orders/s")
            if sid == "max-memory" and cap:
                note += (f"; capacity (offered 500 000/s): {fmt(cap['per_second'])} orders/s = "
                         f"{fmt(cap['per_second'] * 3)} messages/s")
            goal(f"throughput, {label}", f"≥ {fmt(target)} msg/s",
                 f"{fmt(e['max_rate'])} orders/s = {fmt(e['max_rate'] * 3)} messages/s",
                 e["max_rate"] * 3 >= target, note)
    for sid, label, store in (("max-memory", "memory", None), ("max-durable", "durable", "journal")):
        e = best_rate(sid, store)
        qf = get(sid, "QuickFIX C++")
        if qf and e and qf["max_rate"]:
            note = f"fix-engine {e['variant']}"
            if label == "durable":
                note += " with fsync; QuickFIX's file store never fsyncs"
            qcap = get("saturation", "QuickFIX C++")
            if label == "memory" and cap and qcap and qcap["per_second"]:
                note += (f"; capacity {cap['per_second'] / qcap['per_second']:.2f} × "
                         f"({fmt(cap['per_second'])} vs {fmt(qcap['per_second'])} orders/s)")
            goal(f"throughput vs QuickFIX C++, {label}", "≥ 3 ×",
                 f"{e['max_rate'] / qf['max_rate']:.2f} × ({fmt(e['max_rate'])} vs "
                 f"{fmt(qf['max_rate'])} orders/s)", e["max_rate"] >= 3 * qf["max_rate"], note)
    early = get("closed-durable", variant="busy-poll, pinned, early delivery", store="journal")
    if early and sync:
        gap = early["p50_us"] - sync[0]
        goal("journal closed loop p50, early delivery", "≤ fdatasync p50 + 40 µs",
             f"{fmt(early['p50_us'])} µs = fdatasync {sync[0]:.0f} + {gap:.0f} µs", gap <= 40,
             "busy-poll, pinned; one group commit per order (the default `durable` delivery "
             "takes two)")
    early_rates = [e for e in (get("max-durable", variant=v, store="journal")
                               for v in ("blocking, early delivery",
                                         "busy-poll, pinned, early delivery")) if e]
    early_max = max(early_rates, key=lambda e: e["max_rate"], default=None)
    if early_max:
        goal("durable throughput, early delivery", "≥ 150 000 orders/s",
             f"{fmt(early_max['max_rate'])} orders/s", early_max["max_rate"] >= 150000,
             f"one session, fdatasync group commit; {early_max['variant']} (the better of "
             "blocking and busy-poll, pinned)")
        qf = get("max-durable", "QuickFIX C++")
        if qf and qf["max_rate"]:
            goal("durable throughput vs QuickFIX's file store", "≥ 10 ×",
                 f"{early_max['max_rate'] / qf['max_rate']:.2f} × ({fmt(early_max['max_rate'])} vs "
                 f"{fmt(qf['max_rate'])} orders/s)", early_max["max_rate"] >= 10 * qf["max_rate"],
                 "each at p99 ≤ 2 × its own unloaded p99; QuickFIX's file store never fsyncs")
    hic = next((e for e in summary if e["id"] == "hiccups"), None)
    for sid, label in (("closed-memory", "closed loop, memory"),
                       ("closed-durable", "closed loop, file store without fsync (like the peers)"),
                       ("open-memory", "open loop 10 000/s, memory"),
                       ("closed-50", "closed loop, 50 sessions, memory")):
        mine = get(sid, store="journal-no-fsync" if sid == "closed-durable" else None)
        beaten = []
        for peer in ("QuickFIX C++", "fixer"):
            other = get(sid, peer)
            if mine and other:
                beaten += [f"{m[:-3]} vs {peer} ({fmt(mine[m])} vs {fmt(other[m])} µs)"
                           for m in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")
                           if mine[m] >= other[m]]
        if not mine:
            continue
        note = LIMITS.get(sid, lambda *a: "")(summary, hic, sync) if beaten else ""
        durable = get("closed-durable", store="journal")
        if sid == "closed-durable" and durable:
            note += ("; " if note else "") + (
                f"with fsync fix-engine's p50 is {fmt(durable['p50_us'])} µs: with the default "
                f"`durable` delivery two fdatasyncs in series per order (the order before the "
                f"application sees it, the reports before they are sent) are 2 × {sync[0]:.0f} µs "
                f"= {2 * sync[0]:.0f} µs of it; `early` delivery needs one; neither peer syncs")
        goal(f"lower latency than every peer: {label}", "every percentile",
             "lower everywhere" if not beaten else "higher at " + "; ".join(beaten),
             not beaten, note)
    many_mine = get("sessions-1000", variant="pinned")
    if many_mine:
        ratio = many_mine["p999_us"] / many_mine["p50_us"]
        goal("fairness, 1 000 sessions in a closed loop", "p99.9 ≤ 10 × p50",
             f"p99.9 {fmt(many_mine['p999_us'])} µs = {ratio:.1f} × p50", ratio <= 10,
             f"{fmt(many_mine['per_second'])} orders/s with all 1 000 sessions active")
        logons = many_mine.get("logons_ms")
        if logons is not None:
            goal("logon storm, 1 000 sessions from one address", "all logged on within 1 s",
                 f"{fmt(logons)} ms", logons <= 1000,
                 "connect to last Logon answer; the engine was already running")
    for noise, what in (("flood", "flooding"), ("stalled", "stalled")):
        beside = get(f"sessions-1000-{noise}", variant="pinned")
        if beside:
            ratio = beside["p999_us"] / beside["p50_us"]
            goal(f"fairness, 999 sessions beside a {what} one", "p99.9 ≤ 10 × p50",
                 f"p99.9 {fmt(beside['p999_us'])} µs = {ratio:.1f} × p50", ratio <= 10,
                 f"{fmt(beside['per_second'])} orders/s for the 999"
                 + (f" (without it: {fmt(many_mine['per_second'])})" if many_mine else ""))
    for rate in SUSTAIN_RATES:
        qf = get(f"sustain-{rate}", "QuickFIX C++")
        if not qf or qf["per_second"] < 0.99 * rate:
            continue  # only the rates QuickFIX sustains
        for variant in ("pinned", "busy-poll, pinned"):
            mine = get(f"sustain-{rate}", variant=variant)
            if not mine:
                continue
            worse = [f"{m[:-3]} {fmt(mine[m])} vs {fmt(qf[m])} µs" for m in ("p99_us", "p999_us")
                     if mine[m] > qf[m]]
            goal(f"sustained {fmt(rate)}/s for {SUSTAIN_SECONDS} s vs QuickFIX C++ ({variant})",
                 "p99 and p99.9 ≤ QuickFIX's",
                 f"p99 {fmt(mine['p99_us'])} vs {fmt(qf['p99_us'])} µs, p99.9 "
                 f"{fmt(mine['p999_us'])} vs {fmt(qf['p999_us'])} µs",
                 not worse, "" if not worse else "the machine's stalls: " + hiccup_text(hic))
    return "\n".join(["| goal | target | measured (median) | | note |", "|---|---|---|---|---|"] + rows)


def sustain_table(entries):
    """Sustained open-loop runs: latency and each engine's peak resident memory."""
    lines = ["| rate | engine | receive | p50 µs | p99 µs | p99.9 µs | max µs | orders/s "
             "| peak RSS MiB | runs |", "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in entries:
        rate = int(e["args"][e["args"].index("--rate") + 1])
        receive = e["variant"] if e["engine"] == "fix-engine" else "its own"
        if "--limit" in e["args"]:
            receive += ", resting limit orders"
        rss = e.get("peak_rss_kb")
        cells = [fmt(e[m]) for m in ("p50_us", "p99_us", "p999_us", "max_us", "per_second")]
        lines.append(f"| {fmt(rate)} | {e['engine']} | {receive} | " + " | ".join(cells)
                     + f" | {'–' if not rss else f'{rss / 1024:.0f}'} | {e['runs']} |")
    return "\n".join(lines)


def sessions_table(entries):
    """Many sessions at once: the logon storm, fairness and each engine's peak memory."""
    lines = ["| engine | receive | all logged on ms | p50 µs | p99 µs | p99.9 µs | max µs "
             "| p99.9 ÷ p50 | orders/s | peak RSS MiB | runs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in entries:
        receive = e["variant"] if e["engine"] == "fix-engine" else "its own"
        rss = e.get("peak_rss_kb")
        logons = e.get("logons_ms")
        cells = [fmt(e[m]) for m in ("p50_us", "p99_us", "p999_us", "max_us")]
        lines.append(f"| {e['engine']} | {receive} | {'–' if logons is None else fmt(logons)} | "
                     + " | ".join(cells) + f" | {e['p999_us'] / e['p50_us']:.1f} | "
                     + f"{fmt(e['per_second'])} | {'–' if not rss else f'{rss / 1024:.0f}'} "
                     + f"| {e['runs']} |")
    return "\n".join(lines)


def noisy_table(entries):
    """The measured sessions' latency beside a noisy one, and without it."""
    lines = ["| engine | beside | p50 µs | p99 µs | p99.9 µs | max µs | p99.9 ÷ p50 "
             "| orders/s | runs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = {"sessions-1000": 0, "sessions-1000-flood": 1, "sessions-1000-stalled": 2}
    beside = {"sessions-1000": "nothing (1 000 measured)",
              "sessions-1000-flood": "a flooding session",
              "sessions-1000-stalled": "a session that never reads"}
    for e in sorted(entries, key=lambda e: (e["engine"] != "fix-engine", order[e["id"]])):
        cells = [fmt(e[m]) for m in ("p50_us", "p99_us", "p999_us", "max_us")]
        lines.append(f"| {e['engine']} | {beside[e['id']]} | " + " | ".join(cells)
                     + f" | {e['p999_us'] / e['p50_us']:.1f} | {fmt(e['per_second'])} "
                     + f"| {e['runs']} |")
    return "\n".join(lines)


def hiccup_text(hic):
    if not hic:
        return "the machine's stalls (not measured)"
    parts = [f"core {c['core']} loses {c['lost_percent']:.1f} % of its time to stalls ≥ 10 µs, "
             f"{c['per_second_over_1ms']:.1f} a second over 1 ms, the longest {fmt(c['max_us'])} µs"
             for c in hic["cores"]]
    return "; ".join(parts)


def open_limit(summary, hic, sync):
    return ("physical limit, the machine's stalls: " + hiccup_text(hic)
            + ". At 10 000 orders/s more than 1 % of orders overlap a stall, so p99 and beyond "
            "measure the stalls, for every engine alike (see *Machine*)")


def many_limit(summary, hic, sync):
    mine = next((e for e in summary if e["id"] == "closed-50" and e["engine"] == "fix-engine"
                 and e["variant"] == "busy-poll, pinned"), None)
    qf = next((e for e in summary if e["id"] == "closed-50" and e["engine"] == "QuickFIX C++"), None)
    if not mine or not qf:
        return ""
    return (f"limit, Little's law: with 50 orders always outstanding the mean round trip is "
            f"50 ÷ throughput. fix-engine's mean is {fmt(mine['mean_us'])} µs at "
            f"{fmt(mine['per_second'])} orders/s, QuickFIX's {fmt(qf['mean_us'])} µs at "
            f"{fmt(qf['per_second'])}: a low p50 below that needs some sessions served at once "
            "while others starve (QuickFIX's p99.9)")


def closed_limit(summary, hic, sync):
    return "outliers of single runs; see the machine's stalls under *Machine*: " + hiccup_text(hic)


LIMITS = {"open-memory": open_limit, "closed-50": many_limit, "closed-memory": closed_limit,
          "closed-durable": closed_limit}


NOTES = {
    "sessions": (
        "One acceptor port, 1 000 sessions (CLIENT … CLIENT999 → EXEC), every one connecting and "
        "logging on at once from 127.0.0.1 (*all logged on*: from the first connect until the last "
        "Logon answer), then each keeping one order outstanding: a fair server's round trip is "
        "about 1 000 ÷ throughput for every session, so p99.9 ÷ p50 measures fairness (goal ≤ 10). "
        "fix-engine checks tokio's shared run queue at every poll above 128 sessions "
        "(`runtime::FAIR_SCHEDULING_ABOVE_SESSIONS`); before, the sessions that overflowed a "
        "worker's own queue waited while the others were served again and again (p50 2.6 ms, "
        "p99 170 ms). Connections over the pending caps queue for their turn instead of being "
        "refused. Peak RSS is the acceptor's VmHWM (fix-engine's includes the generator, which "
        "runs in the same process); `tests/tests/logon_storm.rs` prints the resident memory of a "
        "logged-on idle session (about 10 KiB)."
    ),
    "noisy": (
        "The same closed loop with 999 measured sessions and one more session on the same port "
        "(`fix-bench --noise`): *flooding* sends orders as fast as its socket takes them and "
        "reads and drops the answers; *never reads* sends 1 000 orders/s and never reads, so its "
        "TCP window closes and the acceptor's writes to it stall until the acceptor gives up on "
        "it. The figures are the 999's. Fair means their p99.9 stays within 10 × their p50, as "
        "without the neighbour."
    ),
    "sustain": (
        "Each rate is held for 20 s, coordinated-omission corrected, a fresh peer process per run. "
        "Peak RSS is the acceptor's VmHWM; fix-engine runs inside fix-bench, so its figure includes "
        "the generator's few MiB. Every engine keeps what it sent for resends: QuickFIX's and "
        "fixer's memory stores without limit, fix-engine's up to `memory_store_mb` (256 MiB) per "
        "session. The resting rows send limit orders that the exec simulator keeps (one more per "
        "order): before its book became a B-tree per session, rehashing one global hash table of "
        "every resting order stalled the session for 90–200 ms at a time (p99 67 ms at 40 000/s). "
        "On a 2-core virtual machine, two threads spinning for many seconds (a busy-polling engine "
        "beside the spinning generator, or a saturated peer) get the guest descheduled about 100 ms "
        "at a time: `fix-bench hiccups --seconds 20` with both cores spinning shows it with nothing "
        "of ours running, so the busy-poll rows' p99 there measures the machine, not the engine."
    ),
    "closed-durable": (
        "fix-engine with fsync makes the order durable before the application sees it and the "
        "two ExecutionReports durable before they are sent: two fdatasyncs per order when orders "
        "come one at a time (see the fdatasync figure under *Machine*). Neither peer syncs: "
        "QuickFIX's FileStore only `fflush`es to the OS, and fixer's FileStoreSync=Y only calls "
        "tokio's `File::flush`, which hands the write to the OS and never calls fsync "
        "(fixer 0.11 `store/file_store.rs`). Both would lose messages on a power cut. The "
        "like-for-like row is fix-engine's journal without fsync (`fsync = false`); ratios "
        "compare the peers with it. Under load the journal's group commit makes one "
        "fdatasync cover many orders: compare the durable rates below."),
    "open-memory": (
        "With orders arriving on a schedule, busy-polling wins the body of the distribution; "
        "the tail (p99 and beyond) is set by the machine's stalls (see *Machine*): a round "
        "trip that overlaps one takes at least its length, and at 10 000 orders/s more than "
        "1 % of orders do. The blocking row shows the engine leaving its core idle between "
        "orders, where other tasks then run instead of preempting it."),
    "closed-50": (
        "Fifty sessions each keep one order outstanding, so a fair server's latency is 50 ÷ "
        "its throughput (Little's law; the mean column shows it): fix-engine serves the "
        "sessions in turn (p50 close to p99.9). QuickFIX runs a thread per session on one "
        "core and answers some sessions at once while others wait for whole scheduler "
        "slices: its low p50 comes with a p99.9 in the hundreds of milliseconds and a lower "
        "throughput."),
    "saturation": (
        "Orders offered at 500 000/s, far above what any of the three can answer: the "
        "achieved rate is each engine's capacity on one session and one core (the latency "
        "figures are those of a growing queue and mean nothing here)."),
}


def document(info, codec, summary, floor, plots, sync, args):
    by = {}
    for e in summary:
        by.setdefault(e["id"], []).append(e)
    d = []
    w = d.append
    w("# Benchmarks")
    w("")
    w("Generated by `scripts/bench.sh` (`scripts/bench.py`); do not edit by hand. "
      f"Every figure below is the median of {args.repeats} runs (3 for the rate searches), "
      "measured in one run of the script, interleaved so that drift hits every engine alike.")
    w("")
    w("## Machine")
    w("")
    w(f"- {info['date']}, commit `{info['commit']}`")
    w(f"- {info['cpu']}, {info['cores']} cores, {info['memory']}, Linux {info['kernel']}")
    w(f"- {info['rustc']}; {info['gxx']}; QuickFIX C++ {info['quickfix']} (Debian's libquickfix-dev); "
      f"fixer {info['fixer']} (crates.io)")
    w(f"- write(300 B) + fdatasync on the journal's disk: median {sync[0]:.0f} µs, p99 {sync[1]:.0f} µs "
      "(the floor under any durable round trip)")
    hic = next((e for e in summary if e["id"] == "hiccups"), None)
    if hic:
        w(f"- The machine's own stalls (`fix-bench hiccups`: a thread spinning on each core, both at "
          f"once, timing every gap in its run; median of {hic['runs']} runs of "
          f"{hic['args'][hic['args'].index('--seconds') + 1]} s spread over the run): "
          + hiccup_text(hic) + ". Nothing of ours runs then: these are interrupts, other tasks and "
          "the hypervisor, and any round trip that overlaps one takes at least its length. They "
          "decide every open-loop p99 below.")
    w("")
    w("## Method")
    w("")
    w("- **Load generator** `fix-bench` (engine/bench), the same binary against every acceptor: one "
      "thread drives every initiator session (CLIENT, CLIENT1 … → EXEC, FIX.4.4) over non-blocking "
      "sockets, busy-polling, pinned to core 1. It sends NewOrderSingle and times the first "
      "ExecutionReport (ExecType 0) of each, matched by ClOrdID, in HdrHistogram. **Open loop**: order "
      "*i* is scheduled at start + *i*/rate and its latency counts from that scheduled time "
      "(coordinated omission corrected; the uncorrected p99 is noted). **Closed loop**: each session "
      "sends its next order when the previous one is answered. Warm-up orders are not recorded.")
    w("- **Acceptors** answer every order with an ExecutionReport New and then a Fill, validate "
      "against a FIX 4.4 data dictionary, log no messages, and run on core 0: fix-engine "
      "in-process with the `exec` application (one runtime thread); the QuickFIX C++ peer "
      "(`engine/bench/peers/quickfix/exec_acceptor.cpp`, ThreadedSocketAcceptor, SocketNodelay=Y, "
      "QuickFIX's FIX44.xml, from its source package); the fixer peer (`engine/bench/peers/fixer-exec`, fixer's own "
      "FIX44.xml). Both peers listen on 127.0.0.1 through `tests/interop/loopback_bind.c`; fixer has no "
      "TCP_NODELAY setting, so `engine/bench/peers/nodelay_accept.c` sets it on accepted sockets "
      "(without it its p90 is 43 ms: Nagle's algorithm against delayed ACKs).")
    w("- **Stores, like for like**: *memory* is each engine's memory store. *Durable* is fix-engine's "
      "journal (fdatasync, group commit: one sync covers everything read in one go), QuickFIX's "
      "FileStore (it only `fflush`es to the OS, never fsyncs) and fixer's FileStore with "
      "FileStoreSync=Y (despite the name it only calls tokio's `File::flush`, never fsync). Neither "
      "peer's file store survives a power cut, so fix-engine's journal also runs with `fsync = "
      "false` (*journal-no-fsync*) as the like-for-like row. *Replicated* (fix-engine only; neither "
      "peer has one): leader and standby each fdatasync, and replies leave once the standby "
      "acknowledged. *Early delivery* is `[engine] delivery = \"early\"`: the application sees an "
      "order once journaled, and one group commit covers the order and its reports (the default "
      "`durable` delivery syncs the order first, then the reports).")
    w("- **Receive**: *blocking* means the engine sleeps in epoll until data arrives; *busy-poll* is "
      "`[engine.runtime] busy_poll = true` (the session task re-checks its socket without sleeping); "
      "*pinned* is `pin_cores = [0]`. QuickFIX's ThreadedSocketAcceptor keeps its connection thread "
      "near 100 % of a core on its own (it polls with a short timeout), so the fair comparison is "
      "fix-engine busy-polling, pinned.")
    w("- **Floor**: a TCP echo with the same message sizes, both ends busy-polling, in the same run. "
      "**Maximum sustainable rate**: the highest open-loop rate at which p99 stays below twice the "
      "p99 measured at 1 000 orders/s and the rate is achieved (doubling from 10 000/s, then "
      "bisecting). Each rate, the unloaded one too, is run three times for a second and judged by "
      "the run with the median p99, so that one stall of the machine does not decide a step. "
      "**Capacity**: orders offered at 500 000/s; the rate achieved. **Mean** beside the "
      "percentiles: with *n* orders outstanding it is *n* ÷ throughput (Little's law).")
    w("- **Ratios** in parentheses beside a peer's figure: for latency, the peer's figure ÷ "
      "fix-engine's (busy-poll, pinned) in the same scenario; for throughput, fix-engine's ÷ the "
      "peer's (in the rate tables, fix-engine's best receive mode there). Above 1.00× "
      "fix-engine is ahead.")
    w("")
    w("Commands: `scripts/bench.sh` (all of this, about 35 minutes on 2 cores); one scenario by hand, e.g. "
      "`cargo run --release -p fix-bench -- rtt --busy-poll --engine-cores 0 --client-core 1` or "
      "`cargo run --release -p fix-bench -- max-rate --store journal --busy-poll`; "
      "`scripts/bench.sh --only sustain --repeats 3 --out docs/bench/sustained.md` (the sustained "
      "runs alone; likewise `--only closed-durable` → `docs/bench/closed-durable.md`, "
      "`--only max-durable --repeats 1` → `docs/bench/max-durable.md`, `--only sessions` → "
      "`docs/bench/sessions.md`); "
      "`cargo bench -p fix-codec --bench codec`.")
    w("")
    w("## Goals")
    w("")
    w(goals(summary, codec, floor, sync))
    w("")
    if codec:
        w("## Codec (criterion, median ns per message)")
        w("")
        w("| benchmark | ns | allocations per message |")
        w("|---|---:|---:|")
        for k in sorted(codec):
            a = codec[k]["allocs"]
            w(f"| {k} | {codec[k]['ns']:.0f} | {'' if a is None else a} |")
        w("")
        w("Validation uses QuickFIX's full FIX44.xml. Allocations are counted over parse *and* validation.")
        w("")
    for sid, heading in (("closed-memory", "Round trip, closed loop, 1 session, memory store"),
                         ("closed-durable", "Round trip, closed loop, 1 session, durable store"),
                         ("open-memory", "Round trip, open loop at 10 000 orders/s, 1 session, memory store"),
                         ("closed-50", "Round trip, closed loop, 50 sessions (50 orders in flight), memory store"),
                         ("saturation", "Capacity: open loop at 500 000 orders/s offered, 1 session, memory store")):
        entries = [e for e in summary if e["id"] == sid]
        if sid == "closed-memory":
            entries = [e for e in summary if e["id"].startswith("closed-memory")]
            entries.sort(key=lambda e: (e["engine"] != "fix-engine", e["variant"] != "busy-poll, pinned"))
        if sid == "closed-durable":
            entries += by.get("closed-replicated", [])
            entries.sort(key=lambda e: (e["engine"] != "fix-engine", e["store"] != "journal-no-fsync"))
        if not entries:
            continue
        w(f"## {heading}")
        w("")
        w(table(entries, floor, "journal-no-fsync" if sid == "closed-durable" else None))
        if sid in NOTES:
            w("")
            w(NOTES[sid])
        unc = [e for e in entries if "uncorrected_p99_us" in e and sid.startswith("open")]
        if sid == "saturation":
            unc = []
        if unc:
            w("")
            w("Uncorrected p99 (from the actual send time, for comparison): "
              + ", ".join(f"{e['engine']} {fmt(e['uncorrected_p99_us'])} µs" for e in unc) + ".")
        w("")
    for sid, heading in (("max-memory", "Maximum sustainable rate, memory store"),
                         ("max-durable", "Maximum sustainable rate, durable store"),
                         ("max-replicated", "Maximum sustainable rate, replicated")):
        if by.get(sid):
            w(f"## {heading}")
            w("")
            w(max_table(by[sid], "journal" if sid == "max-durable" else None))
            w("")
    thousand = [e for e in summary if e["id"] == "sessions-1000"]
    if thousand:
        w("## A thousand sessions: logon storm, fairness, memory")
        w("")
        w(NOTES["sessions"])
        w("")
        w(sessions_table(thousand))
        w("")
    noisy = [e for e in summary if e["id"].startswith("sessions-1000-")]
    if noisy:
        w("## One noisy session beside 999")
        w("")
        w(NOTES["noisy"])
        w("")
        w(noisy_table(noisy + thousand))
        w("")
    sustained = [e for e in summary if e["id"].startswith("sustain")]
    if sustained:
        w(f"## Sustained load: {SUSTAIN_SECONDS} s open loop, 1 session, memory store")
        w("")
        w(NOTES["sustain"])
        w("")
        w(sustain_table(sustained))
        w("")
    if FAILURES:
        w("## Runs that failed")
        w("")
        w("Each failed run was retried once; the figures above use the runs that completed.")
        w("")
        for f in FAILURES:
            w(f"- {f}")
        w("")
    if plots:
        w("## Latency distributions")
        w("")
    for engine, f in plots.items():
        w(f"![{engine}]({f})")
        w("")
    w("## Where the time goes, and what was removed")
    w("")
    w("Profiled with `perf record -e cpu-clock` (this machine has no hardware counters) and "
      "timestamps around the session actor's read → process → write steps:")
    w("")
    w("- **Thread wake-up** dominated: a blocking engine paid 10–15 µs per round trip to wake its "
      "runtime thread on the idle core, about as much as all its FIX work. `busy_poll` removes it "
      "(compare the *blocking* and *busy-poll* rows above).")
    w("- **Per-message allocations** on the send path: the outbound hook re-split every message "
      "into a fresh field index, the exec simulator built a new encoder and copied every field for "
      "each report, and the per-session counters were looked up by label (SipHash and a lock) for "
      "every message. All three are gone (a reused scratch index, a reused builder, borrowed "
      "fields, counters looked up once).")
    w("- What remains per order on the engine thread is about 1.1 µs to frame, parse, validate and "
      "sequence-check the order, about 2 µs to run the application and encode, store and sequence "
      "two ExecutionReports, and the write syscall; the loopback round trip itself (the floor) is the "
      "largest single part.")
    w("- **Durable** round trips are bounded by fdatasync (see *Machine*): one order at a time "
      "cannot beat it; the journal's group commit is what lets throughput scale beyond 1/fsync.")
    w("")
    w("On a 2-core machine the load generator needs one core and the engine the other; any other "
      "process waking up (the machine also runs PostgreSQL, MariaDB, Redis, RabbitMQ and NATS), "
      "an interrupt or the hypervisor stalls one of them, which is where the millisecond maxima "
      "and the open-loop p99s come from, for every engine alike: the stall figures under *Machine* "
      "are measured in the same run with nothing of ours running. Running the spinning threads "
      "SCHED_FIFO removed about half of the stalls over 1 ms in a trial by hand (other tasks) and "
      "none of the shorter ones (interrupts and the hypervisor); it is not used, because the "
      "kernel's real-time throttling then takes 50 ms of every second from a spinning thread.")
    w("")
    return "\n".join(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs of each scenario (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny loads, to check the script (figures meaningless)")
    ap.add_argument("--out", default=str(DOCS / "benchmarks.md"), help="the document to write")
    ap.add_argument("--only", metavar="PREFIX",
                    help="only the scenarios whose id starts with PREFIX (e.g. sustain), "
                         "written to --out; the machine's stalls are always measured")
    args = ap.parse_args()
    if shutil.which("python3") is None:
        sys.exit("error: python3 needed")
    tools = build()
    info = machine(tools)
    cores = os.cpu_count() or 1
    sync = fdatasync_latency(50 if args.quick else 500)
    codec = {} if args.quick or args.only else codec_benches()
    scens = scenarios(args.quick, cores)
    if args.only:
        scens = [sc for sc in scens if sc[0].startswith(args.only) or sc[0] == "hiccups"]
        if len(scens) <= 1:
            sys.exit(f"error: no scenario id starts with {args.only!r}")
    results = measure_all(scens, args.repeats, tools, cores)
    summary = summarize(scens, results)
    floor = next((e for e in summary if e["id"] == "floor"), None)
    summary = [e for e in summary if e["id"] != "floor"]
    # A partial or quick run leaves the full run's plots and results alone.
    partial = args.quick or args.only
    plots = plot(summary, floor) if not partial else {}
    raw = Path(args.out).with_suffix(".json") if partial else PLOTS / "results.json"
    raw.write_text(json.dumps({"machine": info, "codec": codec, "floor": floor,
                               "summary": summary}, indent=1))
    Path(args.out).write_text(document(info, codec, summary, floor, plots, sync, args))
    log(f"wrote {args.out}, {raw} and {len(plots)} plots")


if __name__ == "__main__":
    main()
