#!/usr/bin/env python3
"""Failover time with a quorum witness against without one, and how long a primary cut
off from its quorum goes on accepting writes (issue: quorum with a witness).

`failover`: each run builds a fresh set of release daemons on loopback. A is the primary
with 50 generated devices. B is a secondary following A with heartbeat interval 1 s, 3
failures and re-check 1 s (on-failure promote), synced. With the witness, W is a `mode
witness` node; all three trust each other, A and B name W (`witness HOST`), and the run
waits until A holds the lease. A gets SIGKILL at a different point of the heartbeat
cycle, and B's /hastatus.html is polled every 5 ms until it answers `Mode: Primary`.
Runs alternate: without, with.

`fence`: one such set with the witness. A client checks in on A every 5 ms. B and W get
SIGSTOP, so A's lease calls get no answer (a partition without RST), and A's
/hastatus.html is polled every 5 ms until it answers `Mode: Fenced`. Each run reports,
from the freeze:
- A's last accepted check-in;
- its fence;
- the earliest moment a taker could be granted the lease: A's last granted renewal (read
  from `show failover`) + the 4 s lease + the 0.5 s clock margin.
Then B and W get SIGCONT and the run waits until A accepts again.

Usage: benches/quorum.py [failover|fence|all] [RUNS]   (builds the release binary first)
"""

import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pair import BIN, Node, build, get, key, shell, token_for, wait  # noqa: E402
import subprocess  # noqa: E402

WHAT = sys.argv[1] if len(sys.argv) > 1 else "all"
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
LEASE_S, MARGIN_S = 4.0, 0.5


def trio(work, witness):
    """A primary and its synced secondary (and a witness, when `witness`), running."""
    a, b = Node(os.path.join(work, "a")), Node(os.path.join(work, "b"))
    w = Node(os.path.join(work, "w")) if witness else None
    subprocess.run([BIN, "--data-dir", a.path, "data", "generate", "--devices", "50", "--users", "5",
                    "--events", "0"], check=True, capture_output=True)
    if w:
        w.ha("mode witness")
    nodes = [n for n in (a, b, w) if n]
    for n in nodes:
        n.serve()
    for n in nodes:
        n.ha(*[f"trusted-host 127.0.0.1:{m.ssh} {key(m.path)}" for m in nodes if m is not n])
    a.ha("service enable")
    b.ha("mode secondary", f"primary-host 127.0.0.1:{a.ssh}", "heartbeat interval 1", "heartbeat failures 3",
         "heartbeat recheck-interval 1", "on-failure promote", "service enable")
    shell(b.path, "enable", f"failover sync 127.0.0.1:{a.ssh}")
    if w:
        a.ha(f"witness 127.0.0.1:{w.ssh}")
        b.ha(f"witness 127.0.0.1:{w.ssh}")
        a_id = a.failover()["chain"][0]["node_id"]
        wait("the primary holding the lease",
             lambda: ((a.failover().get("quorum") or {}).get("lease") or {}).get("holder") == a_id)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    wait("the heartbeat reaching the primary",
         lambda: any(p["reachable"] and p["checked_at"] > since for p in b.failover()["peers"]))
    return a, b, w


def failover_runs():
    times = {False: [], True: []}
    for run in range(2 * RUNS):
        witness = run % 2 == 1
        work = tempfile.mkdtemp()
        a, b, w = trio(work, witness)
        try:
            time.sleep((run // 2 * 0.37) % 1.0)
            killed = time.monotonic()
            a.kill_9()
            end = time.monotonic() + 60
            while "Mode: Primary" not in get(f"http://127.0.0.1:{b.http}/hastatus.html"):
                if time.monotonic() > end:
                    raise SystemExit("never promoted: " + shell(b.path, "show logging high-availability last 5"))
                time.sleep(0.005)
            took = time.monotonic() - killed
            times[witness].append(took)
            print(f"run {run // 2 + 1:2} {'with' if witness else 'without'} witness: {took:.3f} s", flush=True)
        finally:
            for n in (a, b, w):
                if n:
                    n.stop()
            shutil.rmtree(work, ignore_errors=True)
    for witness in (False, True):
        t = times[witness]
        print(f"{'with' if witness else 'without'} witness: min {min(t):.3f} s, median {statistics.median(t):.3f} s, "
              f"max {max(t):.3f} s over {len(t)} runs")
    print(f"median ratio with/without: {statistics.median(times[True]) / statistics.median(times[False]):.2f}x")


def check_in(port, seq):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/devices/checkin", data=f'{{"seq":{seq}}}'.encode(), method="POST",
        headers={"Authorization": f"Bearer {token_for(42, seq % 50)}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status
    except Exception:  # noqa: BLE001 - refused or no answer
        return 0


def fence_runs():
    work = tempfile.mkdtemp()
    a, b, w = trio(work, True)
    a_id = a.failover()["chain"][0]["node_id"]
    rows = []
    try:
        for run in range(RUNS):
            accepted, stop = [], threading.Event()

            def client():
                seq = run * 1_000_000
                while not stop.is_set():
                    if check_in(a.http, seq) == 200:
                        accepted.append(time.time())
                    seq += 1
                    time.sleep(0.005)

            t = threading.Thread(target=client, daemon=True)
            t.start()
            time.sleep(0.5 + (run * 0.37) % 0.5)
            frozen = time.time()
            for n in (b, w):
                os.kill(n.proc.pid, signal.SIGSTOP)
            renewed = 0
            polled = 0.0
            while "Mode: Fenced" not in get(f"http://127.0.0.1:{a.http}/hastatus.html"):
                if time.time() - frozen > 30:
                    raise SystemExit("never fenced")
                if time.time() - polled > 0.1:
                    polled = time.time()
                    lease = (a.failover().get("quorum") or {}).get("lease") or {}
                    if lease.get("holder") == a_id:
                        renewed = max(renewed, lease.get("renewed_at_ms", 0))
                time.sleep(0.005)
            fenced = time.time()
            time.sleep(0.3)
            stop.set()
            t.join()
            last = max(x for x in accepted if x < fenced + 0.3)
            taker = renewed / 1000.0 + LEASE_S + MARGIN_S
            rows.append((last - frozen, fenced - frozen, taker - frozen))
            print(f"run {run + 1:2}: last accepted {last - frozen:.3f} s, fenced {fenced - frozen:.3f} s, "
                  f"earliest taker {taker - frozen:.3f} s after the freeze", flush=True)
            for n in (b, w):
                os.kill(n.proc.pid, signal.SIGCONT)
            wait("the primary accepting again", lambda: check_in(a.http, 9_000_000 + run) == 200)
            time.sleep(1.0)
    finally:
        for n in (a, b, w):
            if n.proc:
                os.kill(n.proc.pid, signal.SIGCONT)
            n.stop()
        shutil.rmtree(work, ignore_errors=True)
    margins = [r[2] - r[0] for r in rows]
    for name, i in (("last accepted", 0), ("fenced", 1), ("earliest taker", 2)):
        v = [r[i] for r in rows]
        print(f"{name}: median {statistics.median(v):.3f} s, max {max(v):.3f} s after the freeze")
    print(f"earliest taker - last accepted: min {min(margins):.3f} s, median {statistics.median(margins):.3f} s")


build()
if WHAT in ("failover", "all"):
    failover_runs()
if WHAT in ("fence", "all"):
    fence_runs()
