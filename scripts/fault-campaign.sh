#!/usr/bin/env bash
# The fault campaign of issue 18, outside CI: `fix-drill run --cycles N --fault F` for
# every fault, one after another, each drill's JSON line appended to
# docs/bench/fault-campaign.jsonl and the table rewritten in docs/bench/fault-campaign.md.
#
#   scripts/fault-campaign.sh [--cycles N] [--instances N] [--bin PATH] [FAULT ...]
#
# Needs root (network namespaces, nftables), a C compiler (the fault shim), PostgreSQL for
# the disk faults (FIX_TEST_POSTGRES_URL, default the local server), and a release build of
# fix-drill (`cargo build --release -p fix-drill`, or --bin). About 11 minutes per fault
# at 100 cycles on two cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cycles=100
instances=2
bin=$root/target/release/fix-drill
faults=()
while [ $# -gt 0 ]; do
    case $1 in
        --cycles) cycles=$2; shift 2 ;;
        --instances) instances=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) faults+=("$1"); shift ;;
    esac
done
[ ${#faults[@]} -gt 0 ] || faults=(stall-standby partition-standby asymmetric disk-full slow-disk clock-step zero-window counterparty-cut)
[ -x "$bin" ] || { echo "error: no fix-drill at $bin: cargo build --release -p fix-drill, or pass --bin" >&2; exit 1; }
# A copy, so that a rebuild meanwhile cannot pull the binary from under the drill (it
# starts its engines from its own file).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$bin" "$work/fix-drill"
bin=$work/fix-drill
out=$root/docs/bench/fault-campaign.jsonl
status=0
for fault in "${faults[@]}"; do
    case $fault in
        # A SQLite lease file would fail or slow with the journal's disk and blur the cause.
        disk-full|slow-disk) backend=postgres ;;
        *) backend=sqlite ;;
    esac
    echo "== $fault ($backend, $instances instances, $cycles cycles) $(date -u +%H:%M:%S)" >&2
    log=$work/$fault.log
    line=$("$bin" run --json --cycles "$cycles" --instances "$instances" --fault "$fault" --backend "$backend" 2>"$log") || status=1
    # The cycles that were not plain (a stale or in-sync lead), for the record.
    grep -E "STALE|still recorded in sync" "$log" >&2 || true
    if [ -n "$line" ]; then
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["fault"]=sys.argv[2]; d["date"]=sys.argv[3]; d["instances"]=int(sys.argv[4]); print(json.dumps(d))' \
            "$line" "$fault" "$(date -u +%Y-%m-%d)" "$instances" >> "$out"
    else
        cp "$log" "/tmp/fault-campaign-$fault.log"
        echo "   $fault: the drill stopped before its report: /tmp/fault-campaign-$fault.log" >&2
        tail -5 "$log" >&2
    fi
done
python3 - "$out" "$root/docs/bench/fault-campaign.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
latest = {}
for r in rows:
    latest[(r["fault"], r.get("instances", 2))] = r
out = ["# Fault campaign (issue 18)", "",
       "`scripts/fault-campaign.sh` (written by it; the latest run of each fault). Each cycle injects",
       "the fault under load from a counterparty at 200 orders/s, then kills or deposes the leader",
       "as `fix-drill run --help` describes. Every column after `orders` must be 0.", "",
       "`led in sync` counts cycles in which the left-behind standby led legitimately: the dead",
       "leader had not recorded it out of the in-sync set (read from the lease store after the",
       "kill), so it acknowledged nothing without it (informational; `stale` must be 0).", "",
       "With `stall-standby`, `partition-standby` and `asymmetric`, kill→leader includes the",
       "drill's 2 s watch that the left-behind standby does not lead and, with two instances,",
       "the restart of the killed leader, the only in-sync instance; kill→logon is when the",
       "counterparty is trading again. Earlier runs stay in `fault-campaign.jsonl`.", "",
       "| fault | instances | backend | date | cycles | kill→leader p50 / p99 ms | kill→logon p50 / p99 ms | orders | lost | unflagged dup. | gaps | stale leaders | led in sync | stuck probes | journal violations |",
       "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for (f, n), r in latest.items():
    kl, lo = r["kill_to_leader"], r["kill_to_logon"]
    out.append(f"| {f} | {n} | {r['backend']} | {r['date']} | {r['cycles']} | {kl['p50_ms']:.0f} / {kl['p99_ms']:.0f} | "
               f"{lo['p50_ms']:.0f} / {lo['p99_ms']:.0f} | {r['orders']} | {r['lost']} | {r['unflagged_duplicates']} | "
               f"{r['gaps']} | {r['stale_takeovers']} | {r.get('led_while_in_sync', '–')} | {r['stuck_probes']} | {len(r['journals']['violations'])} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
EOF
exit $status
