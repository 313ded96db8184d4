#!/usr/bin/env bash
# Uplink benchmarks against the built `provider serve` on loopback (no root needed):
#   tunnels  TUNNELS (1000) appliances enroll, then all hold a tunnel at once; the provider's
#            resident memory before and after the tunnels opened, per tunnel
#   resync   one appliance with MACHINES (1000) machines reconnects after the operator changed
#            every machine's boot target and the appliance queued a power state per machine;
#            the time until every queued event is acknowledged and every command executed
# The load side is the real uplink::Session over tokio-rustls, in provider/tests/load.rs.
#
#   bench/uplink.sh                       # ~3 min
#   TUNNELS=100 MACHINES=200 bench/uplink.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPORT=${REPORT:-$ROOT/bench/results/uplink-$(date +%F).md}
export TUNNELS=${TUNNELS:-1000} MACHINES=${MACHINES:-1000}
cd "$ROOT"

out=$(cargo test --release -q -p provider --test load -- --ignored --nocapture --test-threads 1 2>&1) \
    || { echo "$out" >&2; exit 1; }
field() { grep "bench=$1 " <<<"$out" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
sizes=$(cargo run --release -q -p uplink --example wire_size)

mkdir -p "$(dirname "$REPORT")"
{
    echo "# Uplink benchmarks ($(date -u +%F), $(nproc) cores)"
    echo
    echo "| measure | value |"
    echo "|---|---:|"
    echo "| tunnels held at once | $(field tunnels tunnels) |"
    echo "| provider RSS before / after, KiB | $(field tunnels rss_before_kib) / $(field tunnels rss_after_kib) |"
    echo "| memory per tunnel, KiB | $(field tunnels per_tunnel_kib) |"
    echo "| time to open them one after another, ms | $(field tunnels connect_all_ms) |"
    echo "| resync: machines / commands / queued events | $(field resync machines) / $(field resync commands) / $(field resync events) |"
    echo "| resync: reconnect to in step, ms | $(field resync resync_ms) |"
    echo
    echo "$sizes"
} > "$REPORT"
cat "$REPORT"
