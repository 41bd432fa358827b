#!/usr/bin/env bash
# Sync benchmarks (issue: replication). Two release daemons on loopback; node A holds a
# generated Core of 100,000 devices and 1,000,000 events; node B is a standby secondary
# trusting A. Baselines of the same run go through OpenSSH's sshd on loopback.
# - Full: B runs `failover sync A full` repeatedly, from a new snapshot and from A's
#   checked copy, against `rsync -e ssh` of a copy of A's database file to a new
#   destination. Goal: within 1.25x of rsync.
# - Incremental: 1% of the devices (1,000) check in through A's device API, then B runs
#   `failover sync A`, against rsync's delta transfer of a new copy of A's database onto
#   the previous copy. Five rounds. Goal: at least 10x faster than rsync.
# Needs openssh-server, rsync and hyperfine (Debian; installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
for p in openssh-server rsync hyperfine; do
    dpkg -s "$p" >/dev/null 2>&1 || apt-get install -y -qq "$p" >/dev/null
done

cargo build --release --quiet
bin=$PWD/target/release/coresh
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

a="$work/a"; b="$work/b"
"$bin" --data-dir "$a" data generate --devices 100000 --users 20000 --events 1000000 >/dev/null
ssh_a=$(port)
http_a=$(port)
"$bin" --data-dir "$a" serve --http-listen "127.0.0.1:$http_a" --ssh-listen "127.0.0.1:$ssh_a" --log-level info > "$work/a.log" 2>&1 &
pids+=($!)
key_a=$("$bin" --data-dir "$a" -c 'show ssh local-key | json' | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
"$bin" --data-dir "$b" -c enable -c 'failover mode secondary' -c 'configure terminal' -c high-availability \
    -c "trusted-host 127.0.0.1:$ssh_a $key_a" >/dev/null
key_b=$("$bin" --data-dir "$b" -c 'show ssh local-key | json' | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
"$bin" --data-dir "$a" -c enable -c 'configure terminal' -c high-availability -c "trusted-host core-b $key_b" >/dev/null
sleep 0.5

# Baseline: OpenSSH's sshd on loopback, rsync of a copy of the same database file.
mkdir -p "$work/sshd" "$work/dst"
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd/client_key"
cp "$work/sshd/client_key.pub" "$work/sshd/authorized_keys"
ssh_base=$(port)
cat > "$work/sshd/sshd_config" <<CFG
Port $ssh_base
ListenAddress 127.0.0.1
HostKey $work/sshd/host_key
AuthorizedKeysFile $work/sshd/authorized_keys
PasswordAuthentication no
StrictModes no
PidFile $work/sshd/pid
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -f "$work/sshd/sshd_config" -D &
pids+=($!)
sleep 0.5
sqlite3 "$a/core.db" ".backup '$work/copy.db'"
rsh="ssh -p $ssh_base -i $work/sshd/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

echo "Core data: $(du -h "$work/copy.db" | cut -f1) (100,000 devices, 1,000,000 events)"
# Two kinds of full sync: from a new snapshot, checked as it goes (A's checked copy
# removed before each run: the first full sync a node serves), and from A's checked copy
# and the changes after it (every later one). Each run starts 2 s after the one before,
# A idle: the check of A's live data that follows a sync from the checked copy (at the
# lowest CPU priority) has ended by then on this machine.
sync_full="$bin --data-dir $b -c enable -c 'failover sync 127.0.0.1:$ssh_a full'"
hyperfine --warmup 1 --runs 5 --export-json "$work/sync.json" \
    --prepare "sleep 2; rm -rf $a/checked" -n "coresh full sync, new snapshot" "$sync_full" \
    --prepare "sleep 2" -n "coresh full sync, checked copy" "$sync_full" \
    --prepare "sleep 2; rm -f $work/dst/copy.db" -n "rsync -e ssh" "rsync -e '$rsh' $work/copy.db 127.0.0.1:$work/dst/copy.db" >/dev/null
grep -q "checked copy sent" "$work/a.log" || { echo "no full sync came from the checked copy"; exit 1; }
python3 - "$work/sync.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
s = r["rsync -e ssh"]["median"]
for name in ("coresh full sync, new snapshot", "coresh full sync, checked copy"):
    c = r[name]["median"]
    print(f"{name + ':':38} median {c:.2f} s, {c/s:.2f}x rsync")
print(f"{'rsync -e ssh:':38} median {s:.2f} s")
PY

# Incremental rounds. B is at A's head after the full syncs; dst holds the last copy.
cp "$work/copy.db" "$work/dst/copy.db"
now() { date +%s.%N; }
: > "$work/rounds"
for round in 1 2 3 4 5; do
    "$bin" load --target "127.0.0.1:$http_a" --rate 1000 --seconds 1 --devices 100000 --connections 8 >/dev/null
    sqlite3 "$a/core.db" ".backup '$work/copy.db'"
    # Each timed step starts with no dirty pages of the other's writes queued ahead of
    # its own (rsync does not fsync what it writes; coresh commits durably).
    sync
    t0=$(now)
    sent=$(rsync --stats -e "$rsh" "$work/copy.db" "127.0.0.1:$work/dst/copy.db" | awk '/Total bytes sent/ {gsub(",","",$4); print $4}')
    t1=$(now)
    sync
    t2=$(now)
    "$bin" --data-dir "$b" -c enable -c "failover sync 127.0.0.1:$ssh_a" > "$work/out"
    t3=$(now)
    grep -q "completed: changes" "$work/out" || { cat "$work/out"; exit 1; }
    moved=$("$bin" --data-dir "$b" -c 'show sync history last 1 | json' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["bytes"])')
    echo "$t0 $t1 $t2 $t3 $sent $moved" >> "$work/rounds"
done
python3 - "$work/rounds" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
rs = [r[1] - r[0] for r in rows]
cs = [r[3] - r[2] for r in rows]
print("rounds (coresh s, rsync s):", ", ".join(f"{c:.3f}/{r:.3f}" for c, r in zip(cs, rs)))
c, s = statistics.median(cs), statistics.median(rs)
print(f"coresh incremental sync: median {c:.3f} s, {int(statistics.median(r[5] for r in rows)):,} bytes")
print(f"rsync delta -e ssh:      median {s:.3f} s, {int(statistics.median(r[4] for r in rows)):,} bytes sent")
print(f"rsync / coresh: {s/c:.1f}x")
PY
