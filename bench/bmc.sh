#!/usr/bin/env bash
# BMC power-status benchmark: the appliance's power manager (host-sim bmc) against ipmitool,
# one after another and 8 in parallel, on the same BMCs in the same run.
#
#   bench/bmc.sh                 # 48 BMCs, 5 rounds (~1 min)
#   BMCS=8 REPS=1 bench/bmc.sh   # quick run
#
# BMCS OpenIPMI ipmi_sim instances listen on 127.0.0.1:BASE_PORT+i (loopback only), each with
# a chassis_control script that keeps the power state in a file. Per round, in rotating order:
#   ipmitool-seq   `ipmitool -I lanplus -C 3 chassis power status` for each BMC in turn
#   ipmitool-par8  the same through `xargs -P 8`
#   host-sim       one `host-sim bmc --ipmi ... (xBMCS) status`: sessions opened, read, closed
# Then the leak check: `host-sim bmc ... --rounds LEAK_ROUNDS status` reuses one session per
# BMC for LEAK_ROUNDS reads each; afterwards ipmitool reads every BMC's active session count
# (its own session is the only one expected).
#
# Environment: BMCS (48), REPS (5), BASE_PORT (17001), LEAK_ROUNDS (1000),
#   HOST_SIM (target/release/host-sim), REPORT (bench/results/bmc-YYYY-MM-DD.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BMCS=${BMCS:-48}
REPS=${REPS:-5}
BASE_PORT=${BASE_PORT:-17001}
LEAK_ROUNDS=${LEAK_ROUNDS:-1000}
HOST_SIM=${HOST_SIM:-$ROOT/target/release/host-sim}
REPORT=${REPORT:-$ROOT/bench/results/bmc-$(date +%F).md}
WORK=$(mktemp -d /tmp/bench-bmc.XXXXXX)

for tool in ipmi_sim ipmitool; do
    command -v "$tool" >/dev/null || { echo "bench/bmc.sh: $tool not installed" >&2; exit 1; }
done
[ -x "$HOST_SIM" ] || (cd "$ROOT" && cargo build --release -q -p host-sim)

cleanup() {
    pkill -f "ipmi_sim -c $WORK/" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The chassis: power and boot device in files (the e2e tests' file-backed chassis).
cp "$ROOT/tests/fixtures/chassis-file.sh" "$WORK/chassis.sh"
chmod +x "$WORK/chassis.sh"
cp /dev/null "$WORK/ports"
for i in $(seq 1 "$BMCS"); do
    port=$((BASE_PORT + i - 1))
    mkdir -p "$WORK/bmc$i"
    cat > "$WORK/bmc$i/lan.conf" <<EOF
name "bench$i"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $port
    priv_limit admin
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789ab$(printf %04x "$i")
  endlan
  chassis_control "$WORK/chassis.sh $WORK/bmc$i 0x20"
  user 2 true "admin" "password" admin 10 none md2 md5 straight
EOF
    printf 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n' \
        > "$WORK/bmc$i/bmc.emu"
    ipmi_sim -c "$WORK/bmc$i/lan.conf" -f "$WORK/bmc$i/bmc.emu" -s "$WORK/bmc$i" -n \
        >"$WORK/bmc$i/sim.log" 2>&1 &
    echo "$port" >> "$WORK/ports"
done

ipmitool_status() {
    timeout 20 ipmitool -I lanplus -H 127.0.0.1 -p "$1" -U admin -P password -C 3 chassis power status
}
export -f ipmitool_status
# Every BMC answers before timing starts.
for port in $(cat "$WORK/ports"); do
    for _ in $(seq 1 50); do ipmitool_status "$port" >/dev/null 2>&1 && break; sleep 0.1; done
done

ipmi_args=()
for port in $(cat "$WORK/ports"); do ipmi_args+=(--ipmi "127.0.0.1:$port"); done
run_method() {
    case $1 in
    ipmitool-seq) for port in $(cat "$WORK/ports"); do ipmitool_status "$port"; done ;;
    ipmitool-par8) xargs -P 8 -I{} bash -c 'ipmitool_status {}' < "$WORK/ports" ;;
    host-sim) "$HOST_SIM" bmc "${ipmi_args[@]}" --parallel "$BMCS" --user admin --password password status ;;
    esac
}

methods=(ipmitool-seq ipmitool-par8 host-sim)
declare -A times
for rep in $(seq 1 "$REPS"); do
    for k in 0 1 2; do
        m=${methods[$(( (k + rep) % 3 ))]}
        start=$(date +%s%N)
        out=$(run_method "$m")
        ms=$(( ($(date +%s%N) - start) / 1000000 ))
        answers=$(grep -cE '(on|off)$' <<<"$out" || true)
        [ "$answers" -eq "$BMCS" ] || { echo "$m: $answers of $BMCS answered" >&2; exit 1; }
        times[$m]+="$ms "
        echo "round $rep $m ${ms} ms"
    done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seq_ms=$(median "${times[ipmitool-seq]}")

start=$(date +%s%N)
"$HOST_SIM" bmc "${ipmi_args[@]}" --parallel "$BMCS" --user admin --password password \
    --rounds "$LEAK_ROUNDS" --timeout 600 status > "$WORK/leak.out"
leak_ms=$(( ($(date +%s%N) - start) / 1000000 ))
max_active=0
for port in $(cat "$WORK/ports"); do
    active=$(timeout 20 ipmitool -I lanplus -H 127.0.0.1 -p "$port" -U admin -P password -C 3 \
        session info all | awk -F: '/active sessions/ && !n++ {print $2+0}')
    [ "$active" -gt "$max_active" ] && max_active=$active
done

mkdir -p "$(dirname "$REPORT")"
{
    echo "# BMC power status: $BMCS ipmi_sim BMCs on loopback, $REPS rounds ($(date -u +%F))"
    echo
    echo "| method | median wall ms | all rounds ms | vs ipmitool sequential |"
    echo "|---|---:|---|---:|"
    for m in "${methods[@]}"; do
        med=$(median "${times[$m]}")
        echo "| $m | $med | ${times[$m]}| $(awk -v a="$seq_ms" -v b="$med" 'BEGIN {printf "%.1fx", a / b}') |"
    done
    echo
    echo "Session reuse: $LEAK_ROUNDS status rounds over $BMCS BMCs (one session each) took" \
        "$leak_ms ms ($(awk -v t="$leak_ms" -v n="$LEAK_ROUNDS" 'BEGIN {printf "%.1f", t / n}') ms" \
        "per round); afterwards the most active sessions on any BMC was $max_active" \
        "(ipmitool's own session included)."
} > "$REPORT"
cat "$REPORT"
