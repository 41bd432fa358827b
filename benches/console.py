#!/usr/bin/env python3
"""Console login benchmark (issue: the operator console over SSH).

Time from starting `ssh -tt` (TCP connect, key exchange, ed25519 key login, terminal,
shell) to the first prompt on screen, against OpenSSH's own sshd on the same machine
logging root into bash. Both are measured in the same run, interleaved, with the same
client and options; prints each median and their ratio (goal: coresh no slower).

Needs root (sshd), openssh-server and a release build (made here). Standard library only.
"""

import os
import pty
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("RUNS", "30"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "coresh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def time_to_prompt(port, user, key, prompt, kex):
    """Seconds from exec of ssh to `prompt` on its terminal; then the session is closed."""
    extra = ["-o", f"KexAlgorithms={kex}"] if kex else []
    args = ["ssh", "-tt", "-F", "/dev/null", "-p", str(port), "-i", key, *extra,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", f"{user}@127.0.0.1"]
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "dumb"
        os.execvp("ssh", args)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 20)
            if not ready:
                raise RuntimeError(f"no prompt; saw {seen[-200:]!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"ssh ended; saw {seen[-200:]!r}")
            seen += chunk
            if prompt.search(seen):
                return time.perf_counter() - start
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (sshd needs it)")
    if not shutil.which("sshd") and not os.path.exists("/usr/sbin/sshd"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp()
    daemons = []
    try:
        key = os.path.join(work, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        public = open(key + ".pub").read().strip()

        node = os.path.join(work, "node")
        subprocess.run([BIN, "--data-dir", node, "-c", "enable", "-c", "configure terminal",
                        "-c", "hostname core-a", "-c", f"username admin key {public}"],
                       check=True, stdout=subprocess.DEVNULL)
        coresh_port, http_port = free_port(), free_port()
        daemons.append(subprocess.Popen(
            [BIN, "--data-dir", node, "serve", "--ssh-listen", f"127.0.0.1:{coresh_port}",
             "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "warn"],
            stderr=subprocess.DEVNULL))

        host_key = os.path.join(work, "ssh_host_ed25519_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key], check=True)
        authorized = os.path.join(work, "authorized_keys")
        with open(authorized, "w") as f:
            f.write(public + "\n")
        os.chmod(work, 0o755)
        sshd_port = free_port()
        config = os.path.join(work, "sshd_config")
        with open(config, "w") as f:
            f.write(f"Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
                    f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\n"
                    f"PasswordAuthentication no\nUsePAM yes\nStrictModes no\nPidFile {work}/sshd.pid\n")
        os.makedirs("/run/sshd", exist_ok=True)
        daemons.append(subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config],
                                        stderr=subprocess.DEVNULL))
        wait_port(coresh_port)
        wait_port(sshd_port)

        coresh_prompt = re.compile(rb"core-a>$")
        # bash's prompt for root ends in '# '.
        shell_prompt = re.compile(rb"# $")
        # OpenSSH's client prefers a post-quantum key exchange (sntrup761x25519) that
        # sshd offers and russh does not; it costs CPU on both ends. So the login is timed
        # twice: as the client chooses, and with curve25519 forced on both.
        for kex in [None, "curve25519-sha256"]:
            for _ in range(3):  # warm-up
                time_to_prompt(coresh_port, "admin", key, coresh_prompt, kex)
                time_to_prompt(sshd_port, "root", key, shell_prompt, kex)
            coresh, sshd = [], []
            for _ in range(RUNS):
                coresh.append(time_to_prompt(coresh_port, "admin", key, coresh_prompt, kex))
                sshd.append(time_to_prompt(sshd_port, "root", key, shell_prompt, kex))
            c, s = statistics.median(coresh), statistics.median(sshd)
            print(f"key exchange: {kex or 'client default'}")
            print(f"  coresh: median {c * 1000:.1f} ms (min {min(coresh) * 1000:.1f}, max {max(coresh) * 1000:.1f})")
            print(f"  sshd:   median {s * 1000:.1f} ms (min {min(sshd) * 1000:.1f}, max {max(sshd) * 1000:.1f})")
            print(f"  ratio coresh/sshd: {c / s:.2f} ({RUNS} runs each, interleaved)")
    finally:
        for d in daemons:
            d.terminate()
            d.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
