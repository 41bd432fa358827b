#!/usr/bin/env python3
"""Replication benchmarks (issue: continuous and synchronous replication, switchover).
Release daemons on loopback; each figure beside its baseline measured in the same run.

  lag        commit on the primary to applied on the standby, p50/p99/max, at 1,000 and
             5,000 check-ins/s on a 100k-device Core (continuous; the standby's own
             per-entry measurement, `show replication`), beside the scheduled mode
             (sync run-every 1 minute) at 1,000/s, measured from the same log
  loss       kill -9 of the primary at 1,000 check-ins/s: acknowledged check-ins missing
             on the standby (counted one by one), RUNS runs each of continuous and
             synchronous, and 3 of scheduled (run-every 1 minute)
  latency    check-in latency at 2,000/s, synchronous against continuous
  switchover RUNS switchovers back and forth under 200 check-ins/s: command to the new
             primary taking writes, writes lost

Usage: benches/replication.py [lag|loss|latency|switchover|all] [RUNS]
"""

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pair  # noqa: E402

WHAT = sys.argv[1] if len(sys.argv) > 1 else "all"
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def bucket_top(b):
    """replication::lag::bucket_top."""
    if b < 100:
        return b
    if b < 190:
        return 100 + (b - 100) * 10 + 9
    if b < 280:
        return 1000 + (b - 190) * 100 + 99
    return float("inf")


def stream_lag(node, since, until):
    """p50/p99/max (ms) and entries of the standby's recorded seconds in [since, until]."""
    conn = sqlite3.connect(f"file:{node.path}/system.db?mode=ro", uri=True)
    rows = conn.execute("SELECT entries, max_ms, histogram FROM stream_seconds WHERE second BETWEEN ? AND ?",
                        (int(since), int(until))).fetchall()
    conn.close()
    hist, entries, top = {}, 0, 0
    for n, mx, h in rows:
        entries += n
        top = max(top, mx)
        for b, c in json.loads(h).items():
            hist[int(b)] = hist.get(int(b), 0) + c
    total = sum(hist.values())

    def at(q):
        rank, seen = max(1, int(total * q + 0.999999)), 0
        for b in sorted(hist):
            seen += hist[b]
            if seen >= rank:
                return min(bucket_top(b), top)
    return (at(0.5), at(0.99), top, entries) if total else (None, None, None, 0)


def load(node, rate, seconds, devices):
    out = subprocess.run([pair.BIN, "load", "--target", f"127.0.0.1:{node.http}", "--rate", str(rate), "--seconds",
                          str(seconds), "--devices", str(devices), "--connections", "16", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def lag():
    print("## lag: commit to apply, 100k devices", flush=True)
    a, b = pair.streaming_pair(100_000, "continuous")
    try:
        for rate in (1000, 5000):
            since = time.time()
            report = load(a, rate, 20, 100_000)
            time.sleep(2)
            p50, p99, mx, n = stream_lag(b, since, time.time())
            print(f"continuous {rate}/s: achieved {report.get('rate', report)} ; {n} entries; p50 {p50} ms, "
                  f"p99 {p99} ms, max {mx} ms", flush=True)
        # Scheduled: the same log, lag = the end of the sync that brought an entry over.
        b.ha("replication mode scheduled", "sync run-every 1 minutes",
             f"sync start-time {time.strftime('%H:%M', time.gmtime(time.time() + 60))}")
        time.sleep(1)
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        load(a, 1000, 70, 100_000)
        pair.wait("a scheduled sync after the load", lambda: any(
            s["started_at"] > since and s["result"] == "success"
            for s in json.loads(pair.shell(b.path, "show sync history | json"))), timeout=180)
        syncs = sorted(s["finished_at"] for s in json.loads(pair.shell(b.path, "show sync history | json"))
                       if s["started_at"] > since and s["result"] == "success" and s.get("finished_at"))
        conn = sqlite3.connect(f"file:{b.path}/core.db?mode=ro", uri=True)
        ats = [r[0] for r in conn.execute("SELECT at FROM repl_log WHERE at > ?", (since,))]
        conn.close()

        def ms(t):
            return time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(t[20:23] or 0)
        fin = [ms(f) for f in syncs]
        lags = [min(f for f in fin if f >= ms(t)) - ms(t) for t in ats if any(f >= ms(t) for f in fin)]
        print(f"scheduled 1000/s (run-every 1 minute): {len(lags)} entries; p50 {pair.percentile(lags, 0.5):.0f} ms, "
              f"p99 {pair.percentile(lags, 0.99):.0f} ms, max {max(lags):.0f} ms", flush=True)
    finally:
        a.stop()
        b.stop()


def loss_run(mode, run):
    a, b = pair.streaming_pair(1000, mode, heartbeat=False)
    try:
        devices = pair.Devices([a], 1000, 1000)
        devices.start()
        # Kill at a different point each run.
        time.sleep(3 + (run * 0.37) % 1.0)
        a.kill_9()
        time.sleep(0.3)
        devices.stop()
        time.sleep(1.5)
        on_b = pair.check_in_seqs(b)
        lost = [s for s in devices.acked if s not in on_b]
        return len(devices.acked), len(lost)
    finally:
        a.stop()
        b.stop()


def loss():
    print("## loss: kill -9 of the primary at 1,000 check-ins/s", flush=True)
    for mode, runs in (("continuous", RUNS), ("synchronous timeout 1000", RUNS), ("scheduled", 3)):
        results = []
        for r in range(runs):
            acked, lost = loss_run(mode, r)
            results.append((acked, lost))
            print(f"{mode} run {r + 1}: {acked} acknowledged, {lost} lost ({lost / 1000:.3f} s of writes)", flush=True)
        worst = max(lo for _, lo in results)
        print(f"{mode}: worst {worst} lost ({worst / 1000:.3f} s), runs with a loss: "
              f"{sum(1 for _, lo in results if lo)} of {runs}, total acknowledged {sum(a for a, _ in results)}",
              flush=True)


def latency():
    print("## latency: check-ins at 2,000/s", flush=True)
    for mode in ("continuous", "synchronous timeout 1000"):
        a, b = pair.streaming_pair(10_000, mode)
        try:
            report = load(a, 2000, 20, 10_000)
            print(f"{mode}: {json.dumps(report)}", flush=True)
        finally:
            a.stop()
            b.stop()


def switchover():
    print("## switchover under 200 check-ins/s", flush=True)
    a, b = pair.streaming_pair(1000, "continuous")
    b.ha("service enable")
    try:
        devices = pair.Devices([a, b], 200, 1000, threads=4)
        devices.start()
        took, held, primary, standby = [], [], a, b
        for r in range(RUNS):
            time.sleep(1.5)
            started = time.monotonic()
            out = pair.shell(primary.path, "enable", "failover switchover | json", check=False)
            rep = json.loads(out) if out.strip().startswith("{") else {"outcome": out}
            # The new primary takes a write: the command's answer comes once it does.
            done = time.monotonic() - started
            ok = rep.get("outcome") == "switched"
            took.append(done)
            held.append(rep.get("writes_held_ms"))
            print(f"run {r + 1}: {rep.get('outcome')} in {done:.3f} s (daemon {rep.get('took_ms')} ms, writes held "
                  f"{rep.get('writes_held_ms')} ms)", flush=True)
            if ok:
                primary, standby = standby, primary
                pair.wait("the old primary streams", lambda: standby.failover()["replication_state"] == "streaming")
        time.sleep(1)
        devices.stop()
        time.sleep(1.5)
        on = pair.check_in_seqs(primary)
        lost = [s for s in devices.acked if s not in on]
        print(f"switchover: median {statistics.median(took):.3f} s, max {max(took):.3f} s over {len(took)}; "
              f"writes held median {statistics.median([h for h in held if h is not None])} ms; "
              f"{len(devices.acked)} acknowledged, {len(lost)} lost, {devices.refused} refused and retried",
              flush=True)
    finally:
        a.stop()
        b.stop()


pair.build()
for name, f in (("lag", lag), ("loss", loss), ("latency", latency), ("switchover", switchover)):
    if WHAT in (name, "all"):
        f()
