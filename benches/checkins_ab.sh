#!/usr/bin/env bash
# Check-ins, two builds compared in one run (issue #19): each build serves its own copy
# of the same generated node (100,000 devices, 20,000 users, 1,000,000 events) and takes
# `coresh load` as fast as possible for 10 s over 32 connections; ROUNDS pairs, the two
# builds alternating, one daemon at a time. Prints each run and both medians.
#   BASELINE=path/to/coresh [BIN=path/to/coresh] [ROUNDS=5] [RATE=0] [DURATION=10] benches/checkins_ab.sh
# BIN defaults to a release build of this checkout. RATE=5000 DURATION=20 compares the
# latency of a sustained rate instead (the medians of p99 are printed too).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASELINE:?set BASELINE to the coresh binary to compare with}"
rounds=${ROUNDS:-5}
rate=${RATE:-0}
seconds=${DURATION:-10}
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=$PWD/target/release/coresh
fi
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
"$BIN" --data-dir "$work/node" data generate --devices 100000 --users 20000 --events 1000000 >/dev/null
cp -r "$work/node" "$work/baseline"
cp -r "$work/node" "$work/new"
: > "$work/runs"
for round in $(seq "$rounds"); do
    for side in baseline new; do
        bin=$BIN
        [ "$side" = baseline ] && bin=$BASELINE
        port=$((20000 + RANDOM % 20000))
        "$bin" --data-dir "$work/$side" serve --http-listen "127.0.0.1:$port" --log-level warn 2>/dev/null &
        server=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/status/status.html" >/dev/null && break; sleep 0.1; done
        line=$("$BIN" load --target "127.0.0.1:$port" --rate "$rate" --seconds "$seconds" --connections 32 --devices 100000)
        echo "$side $round: $line"
        echo "$side $line" >> "$work/runs"
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=
    done
done
python3 - "$work/runs" <<'PY'
import re, statistics, sys
rates = {"baseline": [], "new": []}
p99 = {"baseline": [], "new": []}
for line in open(sys.argv[1]):
    m = re.match(r"(baseline|new) .*: (\d+)/s.*p99 ([\d.]+) ms", line)
    if m:
        rates[m.group(1)].append(int(m.group(2)))
        p99[m.group(1)].append(float(m.group(3)))
b, n = rates["baseline"], rates["new"]
faster = sum(1 for x, y in zip(b, n) if y > x)
print(f"baseline median {statistics.median(b):,.0f}/s, new median {statistics.median(n):,.0f}/s; new faster in {faster} of {len(b)} pairs")
print(f"p99 medians: baseline {statistics.median(p99['baseline']):.2f} ms, new {statistics.median(p99['new']):.2f} ms")
PY
