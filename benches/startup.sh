#!/usr/bin/env bash
# Startup benchmark (issue: the shell): `coresh -c 'show failover'` on a node with
# 10,000 failover-history rows, against `sqlite3 <db> 'select 1'` on the same database
# in the same run. Prints both medians and their ratio (goal: at most 2x).
# Needs hyperfine and sqlite3 (Debian packages; installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet
bin=target/release/coresh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CORESH_DATA_DIR="$work/node"

"$bin" -c 'show version' >/dev/null
db="$CORESH_DATA_DIR/system.db"
sqlite3 "$db" "
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  INSERT INTO failover_history (at, event, old, new, reason, actor)
  SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-' || i || ' minutes'), 'mode',
         CASE i % 2 WHEN 0 THEN 'primary' ELSE 'secondary' END,
         CASE i % 2 WHEN 0 THEN 'secondary' ELSE 'primary' END,
         'bench', 'bench@batch' FROM n;"
rows=$(sqlite3 "$db" 'SELECT count(*) FROM failover_history')

hyperfine --warmup 5 --runs 200 -N --export-json "$work/result.json" \
    -n coresh "$bin -c 'show failover'" \
    -n sqlite3 "sqlite3 $db 'select 1'" >/dev/null

python3 - "$work/result.json" "$rows" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
c, s = results["coresh"]["median"], results["sqlite3"]["median"]
print(f"history rows: {sys.argv[2]}")
print(f"coresh -c 'show failover': median {c*1000:.2f} ms")
print(f"sqlite3 db 'select 1':     median {s*1000:.2f} ms")
print(f"ratio: {c/s:.2f}x")
PY
