#!/usr/bin/env bash
# Startup benchmark (issue: the shell): `coresh -c 'show failover'` on a node with
# 10,000 failover-history rows, against `sqlite3 <db> 'select 1'` on the same database
# in the same run (10 rounds of 20 runs, alternating). Prints the medians and their
# ratio (goal: at most 1.5x), the page
# faults of one start (perf stat, 100 runs) and the binary's dynamic relocations (the
# relative ones, packed as RELR, counted too).
# One more reference, on a copy of its own: sqlite3-read, `sqlite3 <db> 'select
# count(*) from settings'`, which reads the schema and a table as any start that shows
# something must ('select 1' never reads the file).
# BASELINE=/path/to/another/coresh measures that binary too, in the same run, on a copy
# of the same data directory (e.g. a release build of the commit before a change).
# Needs hyperfine, sqlite3 and perf (Debian packages; installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v perf >/dev/null || need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CORESH_DATA_DIR="$work/node"
# Each binary is measured as installed: a copy (`install` copies too). The file the
# linker wrote starts 5 to 7% slower than a copy of the very same bytes, with about 17
# more page faults (its pages sit in the page cache as the linker wrote them; measured
# 2026-12-06, docs/benchmarks.md), so a fresh build against a copied baseline was
# measured at a disadvantage before this.
mkdir "$work/bin" "$work/baseline-bin"
bin="$work/bin/coresh"
cp "${BIN:-target/release/coresh}" "$bin"
if [ -n "${BASELINE:-}" ]; then
    cp "$BASELINE" "$work/baseline-bin/coresh"
    BASELINE="$work/baseline-bin/coresh"
fi

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
# Each start appends an audit row, so the WAL a start reads back grows run by run: the
# baseline gets a copy of its own, or it would start where coresh's runs left the WAL.
# So does sqlite3: its last close checkpoints and removes the WAL, which on coresh's copy
# gave coresh (never the baseline) a short WAL to start from (until 2026-12-02).
sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
cp -r "$CORESH_DATA_DIR" "$work/baseline-node"
cp -r "$CORESH_DATA_DIR" "$work/sqlite3-node"
cp -r "$CORESH_DATA_DIR" "$work/sqlite3-read-node"
plain="$work/sqlite3-node/system.db"
read_db="$work/sqlite3-read-node/system.db"

baseline=()
if [ -n "${BASELINE:-}" ]; then
    baseline=(-n baseline "$BASELINE --data-dir $work/baseline-node -c 'show failover'")
fi
# 10 rounds of 20 runs each, the commands' order reversed every other round: a machine
# whose speed drifts during the run (these do) then moves every command alike, instead
# of whichever hyperfine happened to run last.
# Each round starts each coresh copy (and sqlite3-read's) from an empty WAL, as a node
# whose daemon checkpoints would.
others=(-n sqlite3-read "sqlite3 $read_db 'select count(*) from settings'")
for round in $(seq 10); do
    for copy in "$db" "$work/baseline-node/system.db" "$read_db"; do
        sqlite3 "$copy" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
    done
    commands=(-n coresh "$bin -c 'show failover'" "${baseline[@]}" "${others[@]}" -n sqlite3 "sqlite3 $plain 'select 1'")
    if [ $((round % 2)) -eq 0 ]; then
        commands=(-n sqlite3 "sqlite3 $plain 'select 1'" "${others[@]}" "${baseline[@]}" -n coresh "$bin -c 'show failover'")
    fi
    hyperfine --warmup 3 --runs 20 -N --export-json "$work/result-$round.json" "${commands[@]}" >/dev/null 2>&1
done

faults() {
    perf stat -r 100 -x, -e page-faults "$@" 2>&1 >/dev/null | awk -F, '/page-faults/ {print $1}'
}
# Every dynamic relocation: the typed ones, and each relative one RELR packs (readelf
# lists those as bare offsets).
relocs() {
    readelf -rW "$1" | grep -cE '^[0-9a-f]{16}( |$)' || true
}
{
    echo "coresh $(faults "$bin" -c 'show failover') $(relocs "$bin")"
    if [ -n "${BASELINE:-}" ]; then
        echo "baseline $(faults "$BASELINE" --data-dir "$work/baseline-node" -c 'show failover') $(relocs "$BASELINE")"
    fi
    echo "sqlite3-read $(faults sqlite3 "$read_db" 'select count(*) from settings') -"
    echo "sqlite3 $(faults sqlite3 "$plain" 'select 1') -"
} > "$work/faults.txt"

python3 - "$work" "$rows" "$work/faults.txt" <<'PY'
import glob, json, statistics, sys
times = {}
for path in glob.glob(sys.argv[1] + "/result-*.json"):
    for r in json.load(open(path))["results"]:
        times.setdefault(r["command"], []).extend(r["times"])
results = {name: statistics.median(t) for name, t in times.items()}
extra = {l.split()[0]: l.split()[1:] for l in open(sys.argv[3])}
s = results["sqlite3"]
print(f"history rows: {sys.argv[2]}; runs: {len(times['sqlite3'])} each")
for name in ["coresh", "baseline", "sqlite3-read", "sqlite3"]:
    if name in results:
        m = results[name]
        faults, relocs = extra[name]
        print(f"{name:12} median {m*1000:.2f} ms  ratio {m/s:.2f}x  page faults {faults}  dynamic relocations {relocs}")
PY
