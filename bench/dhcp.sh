#!/usr/bin/env bash
# DHCP benchmark: perfdhcp DORA rate against host-sim (ours), dnsmasq (leases in
# memory / lease file) and Kea (memfile, persist true), in one run and one topology.
#
#   sudo bench/dhcp.sh                                   # full run
#   SERVERS="host-sim kea-persist" RATES="1000 4000" DURATION=3 bench/dhcp.sh   # quick run
#
# Environment:
#   SERVERS    servers to run, in this order (default: host-sim dnsmasq-mem dnsmasq-file kea-persist)
#   RATES      offered DORA/s steps, ascending (default: 100 250 500 750 1000 1500 2000 3000 4000 5000
#              6000 8000 10000 12000 16000 20000)
#   DURATION   seconds of traffic per step (perfdhcp -p; default 10)
#   STOP_DROP  stop stepping a server once its DORA drop % exceeds this (default 5)
#   HOST_SIM   path of the host-sim binary (default: target/release/host-sim)
#   TMPDIR     where lease files / journals go (default /tmp; must be a real disk to be fair)
#   CHECK      1 (default): after the steps, one more fresh run per server at its clean rate with
#              perfdhcp -u (address uniqueness) and 2^32 client MACs; 0 skips it
#   CHECK_DURATION  seconds of that check run (default 5)
#   RENDER_ONLY  a raw run directory (bench/results/raw/dhcp-RUNID): print its report again, run nothing
#
# Everything happens in two network namespaces created here (bdhcp-srv-PID, bdhcp-cli-PID)
# joined by one veth pair; nothing is sent anywhere else. All of it is removed on exit.
#
# Output: a markdown report on stdout and in bench/results/dhcp-DATE.md (dhcp-DATE-quick.md when
# SERVERS, RATES or DURATION is overridden); perfdhcp, server and probe logs, results.tsv and the
# report in bench/results/raw/dhcp-RUNID/ (gitignored).
#
# Per rate step, every server is started fresh (empty lease state), the steps are
# interleaved (rate 1: all servers, rate 2: all servers, ...) so that the noise of the
# shared machine spreads over all of them alike.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# Only a run with the default servers, rates and duration writes bench/results/dhcp-DATE.md;
# others write dhcp-DATE-quick.md.
FULL=1
[[ -z ${SERVERS:-}${RATES:-}${DURATION:-} ]] || FULL=0
SERVERS=${SERVERS:-"host-sim dnsmasq-mem dnsmasq-file kea-persist"}
RATES=${RATES:-"100 250 500 750 1000 1500 2000 3000 4000 5000 6000 8000 10000 12000 16000 20000"}
DURATION=${DURATION:-10}
STOP_DROP=${STOP_DROP:-5}
CLEAN_DROP=1
HOST_SIM=${HOST_SIM:-$ROOT/target/release/host-sim}
START_TIMEOUT=${START_TIMEOUT:-15}
CHECK=${CHECK:-1}
CHECK_DURATION=${CHECK_DURATION:-5}

RENDER_ONLY=${RENDER_ONLY:-}
if [[ -z $RENDER_ONLY ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "dhcp.sh: needs root (network namespaces)" >&2; exit 1; }
    for tool in ip perfdhcp dnsmasq kea-dhcp4 timeout awk ss nstat; do
        command -v "$tool" >/dev/null || { echo "dhcp.sh: missing $tool" >&2; exit 1; }
    done
    [[ -x /usr/bin/time ]] || { echo "dhcp.sh: missing /usr/bin/time (package time)" >&2; exit 1; }
fi

NS_SRV=bdhcp-srv-$$
NS_CLI=bdhcp-cli-$$
SRV_IP=10.64.0.1
CLI_IP=10.64.0.2
PREFIX=12
STAMP=$(date +%Y-%m-%d)
RUN_ID=$(date +%Y%m%d-%H%M%S)
RESULTS=$ROOT/bench/results
RAW=${RENDER_ONLY:-$RESULTS/raw/dhcp-$RUN_ID}
TMP=
[[ -n $RENDER_ONLY ]] || {
    mkdir -p "$RAW"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/bdhcp.XXXXXX")
}
TSV=$RAW/results.tsv
CHECK_TSV=$RAW/check.tsv
SERVER_PID=
HOST_SIM_SRC=$HOST_SIM

log() { printf '[dhcp.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    set +e
    stop_server
    ip netns del "$NS_SRV" 2>/dev/null
    ip netns del "$NS_CLI" 2>/dev/null
    [[ -z $TMP ]] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- servers
write_dnsmasq_conf() { # $1 = mem|file, $2 = dir
    local dir=$2
    cat >"$dir/dnsmasq.conf" <<EOF
# from shared/reference/peer-configs/perf.conf
port=0
interface=vsrv
bind-interfaces
dhcp-range=10.64.1.0,10.79.255.250,255.240.0.0,1h
dhcp-lease-max=2000000
dhcp-authoritative
no-ping
quiet-dhcp
log-facility=$dir/dnsmasq.log
pid-file=$dir/dnsmasq.pid
EOF
    if [[ $1 == mem ]]; then
        echo "leasefile-ro" >>"$dir/dnsmasq.conf"
    else
        echo "dhcp-leasefile=$dir/dnsmasq.leases" >>"$dir/dnsmasq.conf"
    fi
}

write_kea_conf() { # $1 = dir
    local dir=$1
    cat >"$dir/kea-dhcp4.json" <<EOF
{
  "Dhcp4": {
    "interfaces-config": { "interfaces": [ "vsrv" ], "dhcp-socket-type": "udp" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$dir/leases4.csv", "lfc-interval": 0 },
    "valid-lifetime": 3600,
    "multi-threading": { "enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64 },
    "subnet4": [ { "id": 1, "subnet": "10.64.0.0/12", "pools": [ { "pool": "10.64.1.0 - 10.79.255.250" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$dir/kea.log" } ], "severity": "WARN" } ]
  }
}
EOF
}

# Starts server $1 fresh (empty lease state) in the server namespace; output in $2.
start_server() {
    local name=$1 out=$2 dir=$TMP/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    case $name in
    host-sim)
        set_mode tap
        mkdir -p "$dir/boot" "$dir/state"
        ip netns exec "$NS_SRV" "$HOST_SIM" serve --interface apl0 --ip "$SRV_IP/$PREFIX" \
            --dhcp-pool 10.64.1.0-10.79.255.250 --lease-time 3600 \
            --boot-dir "$dir/boot" --state-dir "$dir/state" --max-leases 1048576 --quiet \
            >"$out" 2>&1 </dev/null &
        ;;
    dnsmasq-mem | dnsmasq-file)
        set_mode kernel
        write_dnsmasq_conf "${name#dnsmasq-}" "$dir"
        ip netns exec "$NS_SRV" dnsmasq -k -C "$dir/dnsmasq.conf" >"$out" 2>&1 </dev/null &
        ;;
    kea-persist)
        set_mode kernel
        write_kea_conf "$dir"
        KEA_PIDFILE_DIR=$dir KEA_LOCKFILE_DIR=$dir \
            ip netns exec "$NS_SRV" kea-dhcp4 -c "$dir/kea-dhcp4.json" >"$out" 2>&1 </dev/null &
        ;;
    *)
        echo "dhcp.sh: unknown server $name" >&2
        return 1
        ;;
    esac
    SERVER_PID=$! # `ip netns exec` execs the command: this is the server's own pid
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { log "$name exited during start-up"; return 1; }
        case $name in
        host-sim) grep -q '^ready' "$out" && return 0 ;;
        *) [[ -n $(ip netns exec "$NS_SRV" ss -Hlun 'sport = :67') ]] && return 0 ;;
        esac
        sleep 0.1
    done
    log "$name not ready after ${START_TIMEOUT}s"
    return 1
}

# Size of the server's persisted lease state after a step (- = leases in memory only).
store_bytes() {
    local f
    case $1 in
    host-sim) f=$TMP/$1/state/leases.journal ;;
    dnsmasq-file) f=$TMP/$1/dnsmasq.leases ;;
    kea-persist) f=$TMP/$1/leases4.csv ;;
    *) echo -; return ;;
    esac
    [[ -e $f ]] && stat -c %s "$f" || echo 0
}

# utime + stime of the server (all threads), in ms.
server_cpu_ms() {
    local stat
    stat=$(cat "/proc/$SERVER_PID/stat" 2>/dev/null) || { echo -; return; }
    stat=${stat##*) }
    # after "pid (comm) ": field 3 = state ... utime = field 14, stime = field 15 of the full line
    set -- $stat
    echo $(((${12} + ${13}) * 1000 / $(getconf CLK_TCK)))
}

# One DORA, to check the server answers at all (and to warm the client's ARP entry).
probe() {
    local i
    for i in 1 2 3 4 5; do
        if timeout 10 ip netns exec "$NS_CLI" perfdhcp -4 -l vcli -b mac=02:00:00:00:00:01 \
            -r 1 -p 1 "$SRV_IP" >>"$1" 2>&1; then
            return 0
        fi
    done
    return 1
}

# Parses a perfdhcp log into: d_sent d_rcvd r_sent r_rcvd avg_do avg_ra max_do max_ra anomalies
parse_perfdhcp() {
    awk '
        /Statistics for: DISCOVER-OFFER/ { s = "d" }
        /Statistics for: REQUEST-ACK/    { s = "r" }
        /^Malformed packets:/            { mal = $3 }
        s != "" && /^sent packets:/      { v[s "sent"] = $3 }
        s != "" && /^received packets:/  { v[s "rcvd"] = $3 }
        s != "" && /^orphans:/           { bad += $2 }
        s != "" && /^rejected leases:/   { bad += $3 }
        s != "" && /^non unique addresses:/ { bad += $4 }
        s != "" && /^avg delay:/         { v[s "avg"] = $3 }
        s != "" && /^max delay:/         { v[s "max"] = $3 }
        END {
            printf "%s %s %s %s %s %s %s %s %s\n",
                v["dsent"] + 0, v["drcvd"] + 0, v["rsent"] + 0, v["rrcvd"] + 0,
                (v["davg"] == "" ? "-" : v["davg"]), (v["ravg"] == "" ? "-" : v["ravg"]),
                (v["dmax"] == "" ? "-" : v["dmax"]), (v["rmax"] == "" ? "-" : v["rmax"]),
                bad + mal
        }' "$1"
}

# Loss counters: client UDP receive-buffer drops, server UDP receive-buffer drops, packets the
# kernel dropped on their way into the tap (host-sim not reading fast enough).
loss_counters() {
    local c s t
    c=$(ip netns exec "$NS_CLI" nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" { print $2 }')
    s=$(ip netns exec "$NS_SRV" nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" { print $2 }')
    t=$(ip netns exec "$NS_SRV" cat /sys/class/net/apl0/statistics/tx_dropped)
    echo "${c:-0} ${s:-0} ${t:-0}"
}

# host-sim's own counters from its "stopped ..." line: received/offers/acks.
host_sim_counters() {
    awk '/^stopped / {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%s/%s/%s", v["received"], v["offers"], v["acks"]; found = 1
    } END { if (!found) printf "-" }' "$1"
}

# ---------------------------------------------------------------- one step
# $1 server, $2 rate, $3 = step (default) or check -> appends a row to $TSV (or $CHECK_TSV);
# returns 1 when the server should stop stepping.
run_step() {
    local name=$1 rate=$2 kind=${3:-step}
    local base=$RAW/$name-$rate tsv=$TSV dur=$DURATION
    # step: the benchmark command. check: 2^32 possible client MACs (so no MAC repeats) and -u,
    # perfdhcp's check that no address is handed to two clients.
    local -a extra=(-R 1000000)
    if [[ $kind == check ]]; then
        base=$RAW/$name-check-$rate tsv=$CHECK_TSV dur=$CHECK_DURATION
        extra=(-R 4294967295 -u)
    fi
    local status=ok cpu=- crashed=0 store=-
    log "$name @ $rate/s: start"
    if ! start_server "$name" "$base.server.log"; then
        status=start-failed
    elif ! probe "$base.probe.log"; then
        status=no-reply
    fi
    if [[ $status != ok ]]; then
        stop_server
        printf '%s\t%s\t%s\n' "$name" "$rate" "$status" >>"$tsv"
        log "$name @ $rate/s: $status (see $base.*.log)"
        return 1
    fi
    local cpu0 loss0 loss1
    cpu0=$(server_cpu_ms)
    loss0=$(loss_counters)
    set +e
    timeout --kill-after=5 $((dur + 30)) ip netns exec "$NS_CLI" \
        /usr/bin/time -o "$base.perfdhcp.time" -f '%U %S' \
        perfdhcp -4 -l vcli "${extra[@]}" -r "$rate" -p "$dur" "$SRV_IP" >"$base.perfdhcp.log" 2>&1
    local prc=$?
    set -e
    loss1=$(loss_counters)
    local loss
    loss=$(awk -v a="$loss0" -v b="$loss1" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "|" : ""), y[i] - x[i] }')
    local cli_cpu
    cli_cpu=$(awk 'NF == 2 && $1 ~ /^[0-9.]+$/ { printf "%.0f", 1000 * ($1 + $2) }' "$base.perfdhcp.time" 2>/dev/null)
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        local cpu1
        cpu1=$(server_cpu_ms)
        [[ $cpu0 != - && $cpu1 != - ]] && cpu=$((cpu1 - cpu0))
    else
        crashed=1
        status=CRASHED
        wait "$SERVER_PID" 2>/dev/null && true
        log "$name @ $rate/s: server died during the run (exit $?), see $base.server.log"
    fi
    ((prc == 124 || prc == 137)) && status=perfdhcp-timeout
    stop_server
    # keep the server's own log (dnsmasq log-facility, Kea logger) next to its stdout
    for f in "$TMP/$name/dnsmasq.log" "$TMP/$name/kea.log"; do
        [[ -s $f ]] && cp "$f" "$base.$(basename "$f")"
    done
    store=$(store_bytes "$name")
    local seen=-
    [[ $name == host-sim ]] && seen=$(host_sim_counters "$base.server.log")
    local p
    p=$(parse_perfdhcp "$base.perfdhcp.log")
    # shellcheck disable=SC2086
    set -- $p
    local d_sent=$1 d_rcvd=$2 r_sent=$3 r_rcvd=$4 avg_do=$5 avg_ra=$6 max_do=$7 max_ra=$8 bad=$9
    local drop dora
    drop=$(awk -v s="$d_sent" -v a="$r_rcvd" 'BEGIN { printf "%.2f", s ? 100 * (s - a) / s : 100 }')
    dora=$(awk -v a="$r_rcvd" -v d="$dur" 'BEGIN { printf "%.0f", a / d }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$name" "$rate" "$status" "$d_sent" "$d_rcvd" "$r_sent" "$r_rcvd" "$drop" "$dora" \
        "$avg_do" "$avg_ra" "$max_do" "$max_ra" "$cpu|$bad|$store|${cli_cpu:--}|$loss|$seen" >>"$tsv"
    log "$name @ $rate/s ($kind): $dora DORA/s, drop $drop %, bad $bad, status $status"
    ((crashed)) && return 1
    [[ $status == ok ]] || return 1
    awk -v d="$drop" -v m="$STOP_DROP" 'BEGIN { exit !(d > m) }' && return 1
    return 0
}

# ---------------------------------------------------------------- report
step_table() { # $1 = tsv: what perfdhcp saw
    echo "| server | offered/s | DISCOVER sent | OFFER rcvd | REQUEST sent | ACK rcvd | DORA drop % | DORA/s | avg delay ms D-O / R-A | max delay ms D-O / R-A | status |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' '
        NF <= 3 { printf "| %s | %s | | | | | | | | | %s |\n", $1, $2, $3; next }
        {
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s |\n",
                $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $3
        }' "$1"
}

diag_table() { # $1 = tsv: where the time went and where packets were lost
    echo "| server | offered/s | server CPU ms | perfdhcp CPU ms | lease store bytes | client UDP rcvbuf drops | server UDP rcvbuf drops | tap drops (to host-sim) | host-sim rcvd / offers / acks | bad pkts |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '
        NF <= 3 { next }
        {
            n = split($14, c, "|")
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                $1, $2, c[1], c[4], c[3], c[5], ($1 == "host-sim" ? "n/a" : c[6]),
                ($1 == "host-sim" ? c[7] : "n/a"), c[8], c[2]
        }' "$1"
}

# What the report says about the run, fixed when the run starts (saved in $RAW/params).
describe_run() {
    local ver_hs=- commit
    if [[ " $SERVERS " == *" host-sim "* ]]; then
        commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) || commit="no commit"
        [[ -z $(cd "$ROOT" && git status --porcelain -- host-sim appliance 2>/dev/null) ]] ||
            commit="$commit + uncommitted changes in host-sim/ or appliance/"
        ver_hs="$HOST_SIM_SRC built $(date -r "$HOST_SIM_SRC" '+%F %T') (sha256 $(sha256sum "$HOST_SIM_SRC" | cut -c1-12); HEAD: $commit)"
    fi
    INFO_HOST="$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
    INFO_CORES=$(nproc)
    INFO_VERSIONS="dnsmasq $(dnsmasq --version | awk 'NR == 1 { print $3 }'), Kea $(kea-dhcp4 -v), perfdhcp $(perfdhcp -v 2>&1 | awk '{ print $2 }'), host-sim: $ver_hs"
    INFO_FS="$(df -T "$TMP" | awk 'NR == 2 { print $2 }') (${TMPDIR:-/tmp})"
    declare -p FULL STAMP RUN_ID SERVERS RATES DURATION CHECK_DURATION STOP_DROP CLEAN_DROP \
        INFO_HOST INFO_CORES INFO_VERSIONS INFO_FS >"$RAW/params"
}

render() {
    echo "# DHCP benchmark, perfdhcp DORA rate ($STAMP, run $RUN_ID)"
    echo
    echo "- Host: $INFO_HOST; shared and noisy."
    echo "- $INFO_VERSIONS."
    echo "- Each step: a fresh server (empty leases), then"
    echo "  \`perfdhcp -4 -l vcli -R 1000000 -r RATE -p $DURATION 10.64.0.1\` from the client namespace."
    echo "- Lease files / journal on $INFO_FS."
    echo "- DORA drop % = 1 - ACKs received / DISCOVERs sent; DORA/s = ACKs received / $DURATION s."
    echo "- Delays are perfdhcp's (DISCOVER->OFFER / REQUEST->ACK)."
    echo
    step_table "$TSV"
    echo
    echo "### Where the time went and where packets were lost"
    echo
    echo "Server / perfdhcp CPU = user+sys during the step ($INFO_CORES cores: $((INFO_CORES * DURATION * 1000)) ms = all of them for $DURATION s)."
    echo "Lease store = size of the persisted lease state after the step (- = memory only)."
    echo "Client / server UDP rcvbuf drops = the namespace's UdpRcvbufErrors (a socket's receive buffer"
    echo "full: perfdhcp's on the client side, dnsmasq's / Kea's on the server side). Tap drops = frames"
    echo "the kernel dropped on their way into apl0 (host-sim not reading fast enough). host-sim rcvd /"
    echo "offers / acks = its own counters. Bad pkts = perfdhcp's malformed + orphans + rejected leases +"
    echo "non-unique addresses."
    echo
    diag_table "$TSV"
    echo
    echo "## Summary"
    echo
    echo "Clean rate = the highest offered rate with under $CLEAN_DROP % DORA drops; max = the most DORA/s"
    echo "at any step. \"(not saturated)\" = the server never passed $STOP_DROP % drops: its numbers are lower"
    echo "bounds. \"(lost at the client)\" = at the first step over $CLEAN_DROP %, most lost DORAs were answered by"
    echo "the server and then dropped in perfdhcp's own socket receive buffer (perfdhcp not keeping up, or"
    echo "replies arriving in bursts larger than that buffer; a real relay would see the same)."
    echo
    echo "| server | clean rate (offered/s) | DORA/s at clean rate | max DORA/s (at offered) | server CPU ms per 1000 DORA at clean rate | first step over $CLEAN_DROP % drops: DORAs lost, of them in perfdhcp's own socket |"
    echo "|---|---:|---:|---:|---:|---|"
    local s co cd md ma cpu sat fu
    while read -r s co cd md ma cpu sat fu; do
        local note=
        [[ $sat == 0 ]] && note=' (not saturated)'
        [[ $sat == 2 ]] && note=' (lost at the client)'
        echo "| $s | $co$note | $cd | $md (at $ma) | $cpu | $fu |"
    done < <(summary_data)
    echo
    ratios
    if [[ -s $CHECK_TSV ]]; then
        echo
        echo "## Address uniqueness check"
        echo
        echo "A fresh server at its clean rate, \`perfdhcp ... -R 4294967295 -u -r RATE -p $CHECK_DURATION\`:"
        echo "2^32 possible client MACs (repeats are negligible) and perfdhcp counting addresses handed out twice."
        echo
        step_table "$CHECK_TSV"
        echo
        diag_table "$CHECK_TSV"
    fi
}

# server clean_offered clean_dora max_dora max_at cpu_per_1000 saturated first_unclean...
summary_data() {
    awk -F'\t' -v clean="$CLEAN_DROP" -v stop="$STOP_DROP" '
        !($1 in order) { order[$1] = ++n; names[n] = $1 }
        NF <= 3 || $3 != "ok" { sat[$1] = 1 }
        NF > 3 && $3 == "ok" {
            if ($8 + 0 < clean && $2 + 0 > co[$1] + 0) {
                co[$1] = $2; cd[$1] = $9; split($14, cb, "|")
                cpu[$1] = (cb[1] != "-" && $7 > 0) ? sprintf("%.0f", 1000 * cb[1] / $7) : "-"
            }
            if ($8 + 0 > stop) sat[$1] = 1
        }
        NF > 3 && $9 + 0 > md[$1] + 0 { md[$1] = $9; ma[$1] = $2 }
        NF > 3 && $8 + 0 >= clean && !($1 in fu) {
            split($14, cb, "|"); fu[$1] = sprintf("%s/s: %d lost, %d in perfdhcp'"'"'s socket", $2, $4 - $7, cb[5])
            if (2 * cb[5] >= $4 - $7) gen[$1] = 1
        }
        END {
            for (i = 1; i <= n; i++) {
                s = names[i]
                printf "%s %s %s %s %s %s %d %s\n", s, (s in co ? co[s] : "-"), (s in cd ? cd[s] : "-"),
                    (s in md ? md[s] : "-"), (s in ma ? ma[s] : "-"), (s in cpu ? cpu[s] : "-"),
                    (gen[s] ? 2 : sat[s]),
                    (s in fu ? fu[s] : "-")
            }
        }' "$TSV"
}

ratios() {
    local -A CD MD SAT
    local s co cd md ma cpu sat _
    while read -r s co cd md ma cpu sat _; do
        CD[$s]=$cd MD[$s]=$md SAT[$s]=$sat
    done < <(summary_data)
    [[ -n ${CD[host-sim]:-} ]] || return 0
    echo "Ratios, host-sim / peer (DORA/s at the clean rate; most DORA/s at any step):"
    echo
    local peer want
    for peer in kea-persist dnsmasq-file dnsmasq-mem; do
        [[ -n ${CD[$peer]:-} ]] || continue
        case $peer in
        kea-persist) want=1 ;;
        dnsmasq-file) want=5 ;;
        *) want= ;;
        esac
        awk -v p="$peer" -v want="$want" -v hc="${CD[host-sim]}" -v pc="${CD[$peer]}" \
            -v hm="${MD[host-sim]}" -v pm="${MD[$peer]}" -v hs="${SAT[host-sim]}" -v ps="${SAT[$peer]}" 'BEGIN {
                ok1 = (hc != "-" && pc != "-" && pc > 0); ok2 = (hm != "-" && pm != "-" && pm > 0)
                if (ps != 1) { ok1 = ok2 = 0 }   # the peer never saturated: no ratio to tell
                ge = (hs == 0) ? ">= " : ""
                r1 = ok1 ? sprintf("%s%.2fx", ge, hc / pc) : "n/a"
                r2 = ok2 ? sprintf("%s%.2fx", ge, hm / pm) : "n/a"
                verdict = ""
                if (want != "") {
                    if (!ok1) verdict = "; target >= " want "x: cannot tell (a server did not saturate)"
                    else verdict = "; target >= " want "x at the clean rate: " (hc / pc >= want ? "met" : "NOT met")
                }
                printf "- vs %s: clean %s, max %s%s\n", p, r1, r2, verdict
            }'
    done
}

# ---------------------------------------------------------------- main
if [[ -n $RENDER_ONLY ]]; then
    # shellcheck disable=SC1091
    source "$RAW/params"
    TSV=$RAW/results.tsv CHECK_TSV=$RAW/check.tsv
    OUT=$RESULTS/dhcp-$STAMP$([[ $FULL == 1 ]] || echo -quick).md
    render | tee "$RAW/report.md" "$OUT"
    exit 0
fi

for s in $SERVERS; do
    if [[ $s == host-sim && ! -x $HOST_SIM ]]; then
        echo "dhcp.sh: $HOST_SIM not built (cargo build --release -p host-sim)" >&2
        exit 1
    fi
done

if [[ " $SERVERS " == *" host-sim "* ]]; then
    # Run a copy: a rebuild during the run must not change the binary under test.
    mkdir -p "$TMP/bin"
    cp "$HOST_SIM" "$TMP/bin/host-sim"
    HOST_SIM_SRC=$HOST_SIM
    HOST_SIM=$TMP/bin/host-sim
fi

describe_run
setup_topology
: >"$TSV"
declare -A STOPPED=()
for rate in $RATES; do
    for s in $SERVERS; do
        [[ -z ${STOPPED[$s]:-} ]] || continue
        run_step "$s" "$rate" || STOPPED[$s]=1
    done
done

if [[ $CHECK == 1 ]]; then
    : >"$CHECK_TSV"
    while read -r s co _; do
        [[ $co != - ]] || co=100
        run_step "$s" "$co" check || true
    done < <(summary_data)
fi

OUT=$RESULTS/dhcp-$STAMP$([[ $FULL == 1 ]] || echo -quick).md
render | tee "$OUT" "$RAW/report.md"
log "report: $OUT, raw logs: $RAW"
