"""What the replication and failover benchmarks share: the release binary, ports, batch
shell lines, daemons on loopback, a streaming pair, and device clients that remember
every check-in the Core acknowledged (so a lost one is counted, not guessed).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "coresh")


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def shell(node, *lines, check=True):
    args = [BIN, "--data-dir", node]
    for line in lines:
        args += ["-c", line]
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def key(node):
    return json.loads(shell(node, "show ssh local-key | json"))["public_key"]


def get(url):
    """The body `url` answers, whatever its status; the error's text when none came."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode(errors="replace")
    except Exception as e:  # noqa: BLE001 - any failure is "not yet"
        return str(e)


def wait(what, f, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if f():
            return
        time.sleep(0.02)
    raise SystemExit(f"never: {what}")


class Node:
    """A data directory and, while it runs, its daemon."""

    def __init__(self, path):
        self.path, self.http, self.ssh, self.proc = path, port(), port(), None
        shell(path, "show version")

    def serve(self):
        self.proc = subprocess.Popen(
            [BIN, "--data-dir", self.path, "serve", "--http-listen", f"127.0.0.1:{self.http}",
             "--ssh-listen", f"127.0.0.1:{self.ssh}", "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait("the daemon listening", lambda: "MOBILEIRON" in get(f"http://127.0.0.1:{self.http}/status/status.html"))

    def kill_9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
            self.proc = None

    def ha(self, *lines):
        return shell(self.path, "enable", "configure terminal", "high-availability", *lines)

    def failover(self):
        return json.loads(shell(self.path, "show failover | json"))


def streaming_pair(devices, mode, work=None, heartbeat=True):
    """A primary with `devices` generated devices and its standby in replication `mode`
    (scheduled, continuous, `synchronous timeout MS`), synced, both daemons running, each
    trusting the other's daemon."""
    work = work or tempfile.mkdtemp()
    a, b = Node(os.path.join(work, "a")), Node(os.path.join(work, "b"))
    subprocess.run([BIN, "--data-dir", a.path, "data", "generate", "--devices", str(devices), "--users", "50",
                    "--events", "0"], check=True, capture_output=True)
    a.serve()
    b.serve()
    a.ha(f"trusted-host 127.0.0.1:{b.ssh} {key(b.path)}", "service enable")
    hb = ["heartbeat interval 1", "heartbeat failures 3", "heartbeat recheck-interval 1"] if heartbeat else []
    b.ha(f"trusted-host 127.0.0.1:{a.ssh} {key(a.path)}", "mode secondary", f"primary-host 127.0.0.1:{a.ssh}",
         *hb, "on-failure keep-standby", f"replication mode {mode}", "service enable")
    shell(b.path, "enable", f"failover sync 127.0.0.1:{a.ssh}")
    if mode != "scheduled":
        wait("the stream", lambda: b.failover()["replication_state"] == "streaming")
    return a, b


def _splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return state, z ^ (z >> 31)


def token_for(seed, index):
    """The token of generated device `index` (coredb::generate::token_for)."""
    state = seed ^ ((index * 0xA24BAED4963EE407) & 0xFFFFFFFFFFFFFFFF)
    state, x = _splitmix(state)
    state, y = _splitmix(state)
    return f"gen{x:016x}{y:016x}"


class Devices:
    """`threads` clients checking in at `rate` per second in all, each check-in carrying
    a number of its own; a refused one goes to the next node of `nodes` (as a load
    balancer would move it). `acked` holds every number a node answered 200, with the
    time it was answered; `latencies` the seconds each acknowledged one took."""

    def __init__(self, nodes, rate, devices, threads=8):
        self.nodes, self.rate, self.devices, self.threads = nodes, rate, devices, threads
        self.acked, self.latencies, self.refused = [], [], 0
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.workers = []

    def start(self):
        for t in range(self.threads):
            w = threading.Thread(target=self._run, args=(t,), daemon=True)
            w.start()
            self.workers.append(w)

    def stop(self):
        self.stop_flag.set()
        for w in self.workers:
            w.join()

    def _run(self, t):
        conns = {}
        interval = self.threads / self.rate if self.rate else 0
        nxt = time.monotonic()
        k = 0
        while not self.stop_flag.is_set():
            seq = t * 100_000_000 + k
            device = (t * 7919 + k * 13) % self.devices
            body = json.dumps({"seq": seq})
            headers = {"Authorization": f"Bearer {token_for(42, device)}", "Content-Type": "application/json"}
            started = time.monotonic()
            done = False
            for node in self.nodes:
                try:
                    c = conns.get(node.http) or http.client.HTTPConnection("127.0.0.1", node.http, timeout=5)
                    conns[node.http] = c
                    c.request("POST", "/api/v1/devices/checkin", body, headers)
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        with self.lock:
                            self.acked.append(seq)
                            self.latencies.append(time.monotonic() - started)
                        done = True
                        break
                except Exception:  # noqa: BLE001 - a dead node: try the next
                    conns.pop(node.http, None)
            if not done:
                with self.lock:
                    self.refused += 1
                time.sleep(0.01)
            k += 1
            nxt += interval
            pause = nxt - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1:
                nxt = time.monotonic()


def check_in_seqs(node):
    """The `seq` of every check-in in `node`'s Core data (read with SQLite itself)."""
    import sqlite3
    conn = sqlite3.connect(f"file:{node.path}/core.db?mode=ro", uri=True)
    try:
        seqs = set()
        for (detail,) in conn.execute("SELECT detail FROM events WHERE kind = 'checkin'"):
            try:
                seqs.add(json.loads(detail)["seq"])
            except (ValueError, KeyError, TypeError):
                pass
        return seqs
    finally:
        conn.close()


def percentile(values, q):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, int(round(q * len(values) + 0.5)) - 1))]
