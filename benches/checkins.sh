#!/usr/bin/env bash
# Device check-in benchmark (issue: the node daemon). A release `coresh serve` on a
# node with generated data; `coresh load` in a second process sends check-ins over 32
# keep-alive connections. Reported: the sustained run at a fixed rate (goal: 5,000/s
# with p99 under 20 ms), the most check-ins per second, and, as the baseline of the
# same run, what wrk gets from the same daemon's status page (no database work).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null

cargo build --release --quiet
bin=target/release/coresh
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT

"$bin" --data-dir "$work/node" data generate --devices 100000 --users 20000 --events 1000000 >/dev/null
"$bin" --data-dir "$work/node" serve --http-listen "127.0.0.1:$port" --log-level warn &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/status/status.html" >/dev/null && break; sleep 0.1; done

echo "Core data: $(du -h "$work/node/core.db" | cut -f1) (100,000 devices, 1,000,000 events)"
echo "sustained: $("$bin" load --target "127.0.0.1:$port" --rate 5000 --seconds 20 --connections 32 --devices 100000)"
echo "maximum:   $("$bin" load --target "127.0.0.1:$port" --rate 0 --seconds 10 --connections 32 --devices 100000)"
echo "baseline (wrk, status page):"
wrk -t1 -c32 -d10s "http://127.0.0.1:$port/status/status.html" | grep -E "Requests/sec|Latency"
