#!/usr/bin/env bash
# TFTP PXE-storm and HTTP /boot.ipxe benchmark: host-sim (ours) against tftpd-hpa, atftpd and
# dnsmasq (TFTP) and nginx (HTTP, a static copy of the script), in one run and one topology.
#
#   sudo bench/tftp-storm.sh                                        # full run (~3.5 min)
#   REPS=9 sudo bench/tftp-storm.sh                                 # 9 rounds (~10 min)
#   REPS=1 SERVERS="host-sim tftpd-hpa" HTTP_SERVERS=host-sim bench/tftp-storm.sh   # quick run
#
# (a) PXE storm, per server and repetition: a fresh server, then at the same instant (clients
#     forked beforehand) one client fetching a 32 MiB file and CLIENTS (48) clients each
#     fetching the ~850 KB iPXE EFI binary,
#     all with atftp `--option "blksize 1468"` (+ `--option "windowsize 8"` where the server does
#     RFC 7440). Every file is compared byte for byte (cmp) with the original.
# (b) HTTP: `wrk -t2 -c48 -d10s --latency` on /boot.ipxe?mac=.. (keep-alive, 48 MACs in turn).
#
# Environment:
#   SERVERS       TFTP configurations, in this order (default:
#                 "host-sim host-sim-ws1 tftpd-hpa atftpd dnsmasq"):
#                   host-sim      ours, clients ask blksize 1468 + windowsize 8
#                   host-sim-ws1  ours, clients ask blksize 1468 only (lockstep, like tftpd-hpa)
#                   tftpd-hpa     in.tftpd -L -s DIR -a IP:69 (no windowsize), blksize 1468
#                   atftpd        atftpd --daemon --no-fork, blksize 1468 + windowsize 8
#                   dnsmasq       port=0 enable-tftp (no windowsize), blksize 1468
#   HTTP_SERVERS  HTTP servers (default: "host-sim nginx nginx-2w"; nginx serves a static copy of
#                 the script host-sim renders with one worker process, like host-sim's one
#                 thread; nginx-2w with two, one per core)
#   REPS          repetitions of everything, interleaved (round 1: all servers, round 2: ...; the
#                 order rotates each round), default 3
#   CLIENTS       concurrent small-file clients (default 48)
#   BIG_MIB       size of the concurrent big file in MiB (default 32)
#   WINDOW        windowsize asked for where supported (default 8)
#   BLKSIZE       blksize asked for (default 1468)
#   EFI           the small file (default /usr/lib/ipxe/ipxe.efi if 700-1000 KB, else 850 KB generated)
#   CLIENT_TIMEOUT  seconds one atftp client may take before it is killed and counted failed (180)
#   LAUNCH_MS     the clients are forked first and all start this long after the driver (2000)
#   HTTP_DURATION seconds of wrk traffic (default 10); HTTP_CONNS connections (default 48)
#   HOST_SIM      host-sim binary (default target/release/host-sim; a copy is run)
#   HOST_SIM_ARGS extra arguments of host-sim serve, e.g. "--tftp-transfers 64" (default none)
#   REPORT        where the report goes (default bench/results/tftp-DATE.md; a copy is in the raw dir)
#   ATFTPD        atftpd binary (default: `command -v atftpd`, else /opt/atftpd/usr/sbin/atftpd;
#                 Debian's atftpd and tftpd-hpa packages conflict, see BENCHMARKS.md)
#
# Everything happens in two network namespaces created here (btftp-srv-PID, btftp-cli-PID)
# joined by one veth pair; nothing is sent anywhere else. All of it is removed on exit.
# Kernel servers listen on vsrv (10.88.0.1/24); for host-sim vsrv is bridged (br0) with the
# persistent TAP apl0 and host-sim's smoltcp owns 10.88.0.1. The client is 10.88.0.2 on vcli.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SERVERS=${SERVERS-"host-sim host-sim-ws1 tftpd-hpa atftpd dnsmasq"}
HTTP_SERVERS=${HTTP_SERVERS-"host-sim nginx nginx-2w"}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-48}
BIG_MIB=${BIG_MIB:-32}
WINDOW=${WINDOW:-8}
BLKSIZE=${BLKSIZE:-1468}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-180}
LAUNCH_MS=${LAUNCH_MS:-2000}
HTTP_DURATION=${HTTP_DURATION:-10}
HTTP_CONNS=${HTTP_CONNS:-48}
HOST_SIM=${HOST_SIM:-$ROOT/target/release/host-sim}
HOST_SIM_ARGS=${HOST_SIM_ARGS:-}
START_TIMEOUT=${START_TIMEOUT:-15}
if [[ -z ${ATFTPD:-} ]]; then
    ATFTPD=$(command -v atftpd || echo /opt/atftpd/usr/sbin/atftpd)
fi

[[ $(id -u) -eq 0 ]] || { echo "tftp-storm.sh: needs root (network namespaces)" >&2; exit 1; }
need=(ip timeout awk ss cmp atftp curl)
[[ " $SERVERS " == *" tftpd-hpa "* ]] && need+=(in.tftpd)
[[ " $SERVERS " == *" dnsmasq "* ]] && need+=(dnsmasq)
[[ " $HTTP_SERVERS " == *" nginx"* ]] && need+=(nginx)
[[ -n $HTTP_SERVERS ]] && need+=(wrk)
for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null || { echo "tftp-storm.sh: missing $tool" >&2; exit 1; }
done
if [[ " $SERVERS " == *" atftpd "* && ! -x $ATFTPD ]]; then
    echo "tftp-storm.sh: no atftpd at $ATFTPD (set ATFTPD=...)" >&2
    exit 1
fi
if [[ " $SERVERS $HTTP_SERVERS " == *" host-sim"* && ! -x $HOST_SIM ]]; then
    echo "tftp-storm.sh: $HOST_SIM not built (cargo build --release -p host-sim)" >&2
    exit 1
fi

NS_SRV=btftp-srv-$$
NS_CLI=btftp-cli-$$
SRV_IP=10.88.0.1
CLI_IP=10.88.0.2
PREFIX=24
STAMP=$(date +%Y-%m-%d)
RUN_ID=$(date +%Y%m%d-%H%M%S)
RESULTS=$ROOT/bench/results
RAW=$RESULTS/raw/tftp-$RUN_ID
mkdir -p "$RAW"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/btftp.XXXXXX")
chmod 755 "$TMP" # tftpd-hpa, atftpd and dnsmasq drop to an unprivileged user
TSV=$RAW/storm.tsv
HTSV=$RAW/http.tsv
SERVER_PID=
HOST_SIM_SRC=$HOST_SIM
BOOT=$TMP/boot
SMALL=ipxe.efi
BIG=big.bin
MACS=()

log() { printf '[tftp-storm.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    set +e
    stop_server
    ip netns del "$NS_SRV" 2>/dev/null
    ip netns del "$NS_CLI" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- files
make_files() {
    mkdir -p "$BOOT"
    chmod 755 "$BOOT"
    local efi=${EFI:-/usr/lib/ipxe/ipxe.efi} size=0
    [[ -r $efi ]] && size=$(stat -L -c %s "$efi")
    if ((size >= 700000 && size <= 1000000)); then
        cp -L "$efi" "$BOOT/$SMALL"
        SMALL_ORIGIN="$efi ($(stat -L -c %s "$efi") bytes, Debian package $(dpkg -S "$(readlink -f "$efi")" 2>/dev/null | cut -d: -f1 || echo ?))"
    else
        head -c 870400 /dev/urandom >"$BOOT/$SMALL"
        SMALL_ORIGIN="generated, 870400 random bytes ($efi was ${size} bytes)"
    fi
    head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$BOOT/$BIG"
    echo "probe" >"$BOOT/probe.txt"
    chmod 644 "$BOOT"/*
    SMALL_BYTES=$(stat -c %s "$BOOT/$SMALL")
    BIG_BYTES=$(stat -c %s "$BOOT/$BIG")
    local i
    for i in $(seq 0 $((HTTP_CONNS - 1))); do
        MACS+=("$(printf '52:54:00:bb:%02x:%02x' $((i / 256)) $((i % 256)))")
    done
}

# ---------------------------------------------------------------- servers
# Starts $1 fresh in the server namespace; its output goes to $2.
start_server() {
    local name=$1 out=$2 dir=$TMP/run/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 755 "$dir"
    case $name in
    host-sim | host-sim-ws1)
        set_mode tap
        mkdir -p "$dir/state"
        ip netns exec "$NS_SRV" "$HOST_SIM" serve --interface apl0 --ip "$SRV_IP/$PREFIX" \
            --dhcp-pool 10.88.0.100-10.88.0.199 --boot-dir "$BOOT" --state-dir "$dir/state" \
            --quiet $HOST_SIM_ARGS >"$out" 2>&1 </dev/null &
        ;;
    tftpd-hpa)
        set_mode kernel
        ip netns exec "$NS_SRV" in.tftpd -L -s "$BOOT" -a "$SRV_IP:69" >"$out" 2>&1 </dev/null &
        ;;
    atftpd)
        set_mode kernel
        ip netns exec "$NS_SRV" "$ATFTPD" --daemon --no-fork --port 69 --bind-address "$SRV_IP" \
            --user nobody --group nogroup --maxthread 256 --logfile "$dir/atftpd.log" \
            --pidfile "$dir/atftpd.pid" "$BOOT" >"$out" 2>&1 </dev/null &
        ;;
    dnsmasq)
        set_mode kernel
        cat >"$dir/dnsmasq.conf" <<EOF
port=0
interface=vsrv
bind-interfaces
enable-tftp
tftp-root=$BOOT
tftp-max=256
log-facility=$dir/dnsmasq.log
pid-file=$dir/dnsmasq.pid
EOF
        ip netns exec "$NS_SRV" dnsmasq -k -C "$dir/dnsmasq.conf" >"$out" 2>&1 </dev/null &
        ;;
    nginx | nginx-2w)
        set_mode kernel
        local workers=1
        [[ $name == nginx ]] || workers=2
        mkdir -p "$dir/www" "$dir/tmp"
        cp "$TMP/boot.ipxe" "$dir/www/boot.ipxe"
        chmod -R a+rX "$dir/www"
        cat >"$dir/nginx.conf" <<EOF
# nginx: one worker, as host-sim serves from one thread; nginx-2w: one per core.
# Static file, access log off.
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp;
    scgi_temp_path $dir/tmp;
    server {
        listen $SRV_IP:80;
        root $dir/www;
        location = /boot.ipxe { default_type text/plain; }
    }
}
EOF
        ip netns exec "$NS_SRV" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" \
            >"$out" 2>&1 </dev/null &
        ;;
    *)
        echo "tftp-storm.sh: unknown server $name" >&2
        return 1
        ;;
    esac
    SERVER_PID=$! # `ip netns exec` execs the command: this is the server's own pid
    local deadline=$((SECONDS + START_TIMEOUT)) port=69 proto=u
    [[ $name == nginx* ]] && port=80 proto=t
    while ((SECONDS < deadline)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { log "$name exited during start-up"; return 1; }
        case $name in
        host-sim*) grep -q '^ready' "$out" && return 0 ;;
        *) [[ -n $(ip netns exec "$NS_SRV" ss -Hl$proto "sport = :$port") ]] && return 0 ;;
        esac
        sleep 0.1
    done
    log "$name not ready after ${START_TIMEOUT}s"
    return 1
}

# utime + stime (+ reaped children's) of every process in the server namespace, in ms. Only
# processes this script started live there. tftpd-hpa's per-transfer children are not counted
# (it does not wait for them), so its figure is reported as n/a.
server_cpu_ms() {
    [[ -n ${SERVER_PID:-} ]] && kill -0 "$SERVER_PID" 2>/dev/null || { echo -; return; }
    local pid stat total=0
    for pid in $(ip netns pids "$NS_SRV"); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        set -- $stat
        total=$((total + ${12} + ${13} + ${14} + ${15}))
    done
    echo $((total * 1000 / $(getconf CLK_TCK)))
}

# How busy the machine is (all CPUs, %) over 1 s while this benchmark sits idle: other people's
# work on the shared cores, measured just before a run.
background_busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]; idle = y[2] - x[2]
        printf "%.0f", (busy + idle > 0 ? 100 * busy / (busy + idle) : 0) }'
}

# Client UDP rcvbuf drops, server UDP rcvbuf drops, frames dropped on their way into apl0.
loss_counters() {
    local c s t
    c=$(ip netns exec "$NS_CLI" nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" { print $2 }')
    s=$(ip netns exec "$NS_SRV" nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" { print $2 }')
    t=$(ip netns exec "$NS_SRV" cat /sys/class/net/apl0/statistics/tx_dropped)
    echo "${c:-0} ${s:-0} ${t:-0}"
}

client_udp_out() {
    ip netns exec "$NS_CLI" nstat -asz UdpOutDatagrams | awk '$1 == "UdpOutDatagrams" { print $2 + 0; f = 1 } END { if (!f) print 0 }'
}

loss_delta() { # $1 before, $2 after -> c|s|t
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "/" : ""), y[i] - x[i] }'
}

# ---------------------------------------------------------------- the storm
# Runs inside the client namespace (bash -c with this function's text). Every client is forked
# first and sleeps until a common start time t0 (LAUNCH_MS after the driver starts), so the
# storm measures the server rather than how fast 49 processes can be forked on a busy machine;
# each client records its start and end ($EPOCHREALTIME, microseconds) relative to t0.
storm_driver() { # out host n small big timeout launch_ms opts...
    local out=$1 host=$2 n=$3 small=$4 big=$5 ct=$6 launch_ms=$7
    shift 7
    local t0=${EPOCHREALTIME/./}
    t0=$((t0 + launch_ms * 1000))
    client() { # kind index remote local
        local d=$((t0 - ${EPOCHREALTIME/./})) s e rc
        if ((d > 0)); then
            sleep "$(printf '%d.%06d' $((d / 1000000)) $((d % 1000000)))"
        fi
        s=${EPOCHREALTIME/./}
        timeout -k 5 "$ct" atftp "${opts[@]}" -g -r "$3" -l "$out/$4.bin" "$host" >"$out/$4.log" 2>&1
        rc=$?
        e=${EPOCHREALTIME/./}
        echo "$1 $2 $rc $((s - t0)) $((e - t0))" >"$out/$4.t"
    }
    local -a opts=("$@")
    client big 0 "$big" big &
    local i
    for ((i = 1; i <= n; i++)); do
        client small "$i" "$small" "s$i" &
    done
    wait
}

# One small fetch (retried): the server answers, and the client's ARP entry is warm.
probe() { # $1 log
    local i
    for i in 1 2 3 4 5; do
        if timeout -k 2 8 ip netns exec "$NS_CLI" atftp -g -r probe.txt -l "$TMP/probe.out" "$SRV_IP" \
            >>"$1" 2>&1 && cmp -s "$TMP/probe.out" "$BOOT/probe.txt"; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

client_opts() { # $1 config -> atftp options, one per line
    printf '%s\n' --option "blksize $BLKSIZE"
    case $1 in
    host-sim | atftpd) printf '%s\n' --option "windowsize $WINDOW" ;;
    esac
}

# $1 config, $2 rep -> a row in $TSV:
# config rep status storm_s big_s last_s agg_MBps failures small_ok big_ok min_small_s
#   max_start_s cpu_ms loss(c|s|t) oack_window srv_stats
run_storm() {
    local name=$1 rep=$2
    local base=$RAW/storm-$name-$rep out=$TMP/out
    rm -rf "$out"
    mkdir -p "$out" "$base"
    log "storm $name rep $rep: start"
    if ! start_server "$name" "$base/server.log"; then
        printf '%s\t%s\tstart-failed\n' "$name" "$rep" >>"$TSV"
        stop_server
        return 0
    fi
    if ! probe "$base/probe.log"; then
        printf '%s\t%s\tno-reply\n' "$name" "$rep" >>"$TSV"
        log "storm $name rep $rep: server does not answer (see $base/)"
        stop_server
        return 0
    fi
    local -a opts
    mapfile -t opts < <(client_opts "$name")
    echo "atftp ${opts[*]} -g -r FILE -l OUT $SRV_IP   (x$CLIENTS $SMALL + 1 $BIG)" >"$base/command.txt"
    local cpu0 loss0 loss1 cpu=- load sent0 sent1
    load=$(background_busy)
    sent0=$(client_udp_out)
    cpu0=$(server_cpu_ms)
    [[ $name != tftpd-hpa ]] || cpu0=-
    loss0=$(loss_counters)
    set +e
    timeout -k 5 $((CLIENT_TIMEOUT + 60)) ip netns exec "$NS_CLI" bash -c \
        "$(declare -f storm_driver); storm_driver \"\$@\"" storm_driver \
        "$out" "$SRV_IP" "$CLIENTS" "$SMALL" "$BIG" "$CLIENT_TIMEOUT" "$LAUNCH_MS" "${opts[@]}" \
        >"$base/driver.log" 2>&1
    local drc=$?
    set -e
    loss1=$(loss_counters)
    sent1=$(client_udp_out)
    local status=ok
    ((drc == 0)) || status="driver-rc-$drc"
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        local cpu1
        cpu1=$(server_cpu_ms)
        if [[ $cpu0 != - && $cpu1 != - ]]; then cpu=$((cpu1 - cpu0)); else cpu=n/a; fi
    else
        status=CRASHED
        log "storm $name rep $rep: server died during the run, see $base/server.log"
    fi
    stop_server
    # Verify every file byte for byte; keep the client logs and the timings.
    local i small_ok=0 big_ok=0
    : >"$base/verify.txt"
    for i in $(seq "$CLIENTS"); do
        if [[ -e $out/s$i.t ]] && awk '{ exit $3 != 0 }' "$out/s$i.t" && cmp -s "$out/s$i.bin" "$BOOT/$SMALL"; then
            small_ok=$((small_ok + 1))
        else
            echo "small $i FAILED: $(cat "$out/s$i.t" 2>/dev/null || echo 'no timing (killed?)'); $(cmp "$out/s$i.bin" "$BOOT/$SMALL" 2>&1 | head -1)" >>"$base/verify.txt"
        fi
    done
    if [[ -e $out/big.t ]] && awk '{ exit $3 != 0 }' "$out/big.t" && cmp -s "$out/big.bin" "$BOOT/$BIG"; then
        big_ok=1
    else
        echo "big FAILED: $(cat "$out/big.t" 2>/dev/null || echo 'no timing'); $(cmp "$out/big.bin" "$BOOT/$BIG" 2>&1 | head -1)" >>"$base/verify.txt"
    fi
    cat "$out"/*.t >"$base/times.txt" 2>/dev/null || true
    # The clients' own output, one file: "== s7.log" then its lines.
    for f in "$out"/big.log "$out"/s*.log; do
        [[ -e $f ]] || continue
        echo "== $(basename "$f")"
        cat "$f"
    done >"$base/clients.log"
    for f in "$TMP/run/$name"/*.log; do
        if [[ -s $f ]]; then cp "$f" "$base/"; fi
    done
    # How many clients saw windowsize in the OACK (atftp prints the options it got).
    # Datagrams the clients sent per DATA block the run needed: about 1 in lockstep, about
    # 1/windowsize when the server granted windowsize (atftp echoes the options it asked for,
    # whatever the OACK said, so its output cannot tell).
    local acks_per_block
    acks_per_block=$(awk -v a="$sent0" -v b="$sent1" -v n="$CLIENTS" -v sb="$SMALL_BYTES" -v bb="$BIG_BYTES" -v k="$BLKSIZE" 'BEGIN {
        blocks = n * (int(sb / k) + 1) + int(bb / k) + 1
        printf "%.3f", (b - a) / blocks }')
    # atftp prints "timeout: retrying..." when it resends an ACK or request.
    local retries
    retries=$(cat "$out"/*.log 2>/dev/null | grep -ci 'timeout' || true)
    local stats=-
    if [[ $name == host-sim* ]]; then stats=$(awk '/^tftp stats/ {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "started=%s completed=%s timeouts=%s retransmits=%s dup_acks=%s aborted=%s full=%s events_lost=%s",
            v["started"], v["completed"], v["timeouts"], v["retransmits"], v["duplicate_acks"], v["aborted"], v["full"],
            v["events_lost"]
    }' "$base/server.log"); fi
    local failures=$((CLIENTS + 1 - small_ok - big_ok))
    local row
    row=$(awk -v n="$CLIENTS" -v sb="$SMALL_BYTES" -v bb="$BIG_BYTES" -v sok="$small_ok" -v bok="$big_ok" '
        $1 == "small" { if ($5 > storm) storm = $5; if (min == "" || $5 - $4 < min) min = $5 - $4
                        if ($4 > ms) ms = $4 }
        $1 == "big"   { big = ($5 - $4); bigend = $5 }
        { if ($5 > last) last = $5 }
        END {
            bytes = sok * sb + bok * bb
            printf "%.3f\t%s\t%.3f\t%.1f\t%.3f\t%.3f", storm / 1e6, (big == "" ? "-" : sprintf("%.3f", big / 1e6)),
                last / 1e6, (last > 0 ? bytes / last : 0), min / 1e6, ms / 1e6
        }' "$base/times.txt")
    local storm_s big_s last_s agg min_s maxstart
    IFS=$'\t' read -r storm_s big_s last_s agg min_s maxstart <<<"$row"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$name" "$rep" "$status" "$storm_s" "$big_s" "$last_s" "$agg" "$failures" "$small_ok" "$big_ok" \
        "$min_s" "$maxstart" "$cpu" "$(loss_delta "$loss0" "$loss1")" "$acks_per_block" "$stats" "$retries" "$load" >>"$TSV"
    log "storm $name rep $rep: storm ${storm_s}s, big ${big_s}s, ${agg} MB/s, failures $failures, status $status"
}

# ---------------------------------------------------------------- HTTP
write_wrk_lua() {
    {
        echo "-- one /boot.ipxe?mac=.. request per MAC, in turn; formatted once"
        echo "local macs = {"
        local m
        for m in "${MACS[@]}"; do echo "  \"$m\","; done
        echo "}"
        cat <<'EOF'
local reqs = {}
local i = 0
function init(args)
  for k, m in ipairs(macs) do
    reqs[k] = wrk.format("GET", "/boot.ipxe?mac=" .. m)
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
EOF
    } >"$TMP/wrk.lua"
}

# The script host-sim renders for the first MAC: nginx serves this file.
fetch_reference_script() {
    local out=$RAW/http-reference.log
    start_server host-sim "$out" || { log "host-sim did not start for the reference script"; return 1; }
    probe "$RAW/http-reference.probe.log" || true
    timeout 10 ip netns exec "$NS_CLI" curl -sS -o "$TMP/boot.ipxe" -D "$RAW/http-reference.headers" \
        "http://$SRV_IP/boot.ipxe?mac=${MACS[0]}"
    stop_server
    cp "$TMP/boot.ipxe" "$RAW/boot.ipxe"
}

# TCP connections the client namespace has opened so far (keep-alive check: wrk opens one per
# connection unless the server closes them).
tcp_opens() {
    ip netns exec "$NS_CLI" nstat -asz TcpActiveOpens | awk '$1 == "TcpActiveOpens" { print $2 + 0; f = 1 } END { if (!f) print 0 }'
}

# wrk output -> rps p50_ms p99_ms requests errors(connect|read|write|timeout|non2xx)
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v
        }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        / requests in / { reqs = $1 }
        /Socket errors:/ { gsub(",", ""); c = $4; r = $6; w = $8; t = $10 }
        /Non-2xx or 3xx responses:/ { n = $5 }
        END { printf "%s\t%.3f\t%.3f\t%s\t%d/%d/%d/%d/%d\n", rps, p50, p99, reqs, c, r, w, t, n }' "$1"
}

run_http() { # $1 server, $2 rep -> a row in $HTSV
    local name=$1 rep=$2 base=$RAW/http-$1-$2
    mkdir -p "$base"
    log "http $name rep $rep: start"
    if ! start_server "$name" "$base/server.log"; then
        printf '%s\t%s\tstart-failed\n' "$name" "$rep" >>"$HTSV"
        stop_server
        return 0
    fi
    # Check the body for one MAC, warm ARP.
    local ok=0 i
    for i in 1 2 3 4 5; do
        if timeout 5 ip netns exec "$NS_CLI" curl -sS -o "$base/check.body" \
            "http://$SRV_IP/boot.ipxe?mac=${MACS[0]}" 2>>"$base/check.log" &&
            cmp -s "$base/check.body" "$TMP/boot.ipxe"; then
            ok=1
            break
        fi
        sleep 0.5
    done
    if ((!ok)); then
        printf '%s\t%s\tno-reply\n' "$name" "$rep" >>"$HTSV"
        stop_server
        return 0
    fi
    local cpu0 cpu=- status=ok load opens0 opens1
    load=$(background_busy)
    cpu0=$(server_cpu_ms)
    opens0=$(tcp_opens)
    local cmd=(wrk -t2 -c"$HTTP_CONNS" -d"${HTTP_DURATION}s" --timeout 5s --latency -s "$TMP/wrk.lua"
        "http://$SRV_IP/boot.ipxe")
    echo "${cmd[*]}" >"$base/command.txt"
    set +e
    timeout -k 5 $((HTTP_DURATION + 30)) ip netns exec "$NS_CLI" "${cmd[@]}" >"$base/wrk.log" 2>&1
    local rc=$?
    set -e
    ((rc == 0)) || status="wrk-rc-$rc"
    opens1=$(tcp_opens)
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        local cpu1
        cpu1=$(server_cpu_ms)
        if [[ $cpu0 != - && $cpu1 != - ]]; then cpu=$((cpu1 - cpu0)); fi
        # Still answering after the load?
        timeout 5 ip netns exec "$NS_CLI" curl -sS -o "$base/after.body" \
            "http://$SRV_IP/boot.ipxe?mac=${MACS[0]}" 2>>"$base/check.log" &&
            cmp -s "$base/after.body" "$TMP/boot.ipxe" || status="no-reply-after-load"
    else
        status=CRASHED
    fi
    stop_server
    for f in "$TMP/run/$name"/*.log; do
        if [[ -s $f ]]; then cp "$f" "$base/"; fi
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rep" "$status" "$(parse_wrk "$base/wrk.log")" "$cpu" "$load" "$((opens1 - opens0))" >>"$HTSV"
    log "http $name rep $rep: $(parse_wrk "$base/wrk.log" | cut -f1-3) (rps p50 p99 ms), status $status"
}

# ---------------------------------------------------------------- report
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

col() { # $1 tsv, $2 server, $3 column -> values of successful rows
    awk -F'\t' -v s="$2" -v c="$3" '$1 == s && NF > 3 && $c != "-" { print $c }' "$1"
}

storm_medians() { # server -> storm big agg failures(total) runs
    local s=$1
    printf '%s %s %s %s %s\n' "$(col "$TSV" "$s" 4 | median)" "$(col "$TSV" "$s" 5 | median)" \
        "$(col "$TSV" "$s" 7 | median)" \
        "$(awk -F'\t' -v s="$s" '$1 == s { f += (NF > 3 ? $8 : '"$CLIENTS"' + 1) } END { print f + 0 }' "$TSV")" \
        "$(awk -F'\t' -v s="$s" '$1 == s { n++ } END { print n + 0 }' "$TSV")"
}

label() {
    case $1 in
    host-sim) echo "host-sim (windowsize $WINDOW)" ;;
    host-sim-ws1) echo "host-sim (no windowsize)" ;;
    atftpd) echo "atftpd (windowsize $WINDOW)" ;;
    tftpd-hpa) echo "tftpd-hpa (no windowsize)" ;;
    dnsmasq) echo "dnsmasq (no windowsize)" ;;
    *) echo "$1" ;;
    esac
}

versions() {
    local ver_hs=-
    if [[ " $SERVERS $HTTP_SERVERS " == *" host-sim"* ]]; then
        ver_hs="$HOST_SIM_SRC built $HOST_SIM_BUILT (sha256 $(sha256sum "$HOST_SIM" | cut -c1-12); tree at the start: $HOST_SIM_TREE)"
    fi
    echo "- host-sim: $ver_hs${HOST_SIM_ARGS:+; extra arguments: $HOST_SIM_ARGS}."
    echo "- Clients: $(atftp -V 2>&1 | head -1), $(wrk -v 2>&1 | head -1 | awk '{ print "wrk", $2 }'), $(curl -V | head -1 | awk '{ print $1, $2 }')."
    local peers=()
    [[ " $SERVERS " == *" tftpd-hpa "* ]] && peers+=("tftpd-hpa $(dpkg-query -W -f '${Version}' tftpd-hpa 2>/dev/null || in.tftpd -V 2>&1 | head -1)")
    [[ " $SERVERS " == *" atftpd "* ]] && peers+=("atftpd $("$ATFTPD" -V 2>&1 | head -1 | sed 's/^atftp-//; s/ (server)//') ($ATFTPD)")
    [[ " $SERVERS " == *" dnsmasq "* ]] && peers+=("dnsmasq $(dnsmasq --version | awk 'NR == 1 { print $3 }')")
    [[ " $HTTP_SERVERS " == *" nginx"* ]] && peers+=("nginx $(nginx -v 2>&1 | awk -F/ '{ print $2 }')")
    local joined
    printf -v joined '%s, ' "${peers[@]}"
    echo "- Peers: ${joined%, }."
}

render() {
    echo "# TFTP PXE storm and HTTP /boot.ipxe benchmark ($STAMP, run $RUN_ID)"
    echo
    echo "- Host: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r); shared and noisy."
    versions
    echo "- Topology: namespaces btftp-srv / btftp-cli joined by one veth; kernel servers on vsrv"
    echo "  ($SRV_IP/$PREFIX), host-sim on the TAP apl0 bridged with vsrv (br0, no IP); client $CLI_IP."
    echo "- Small file: $SMALL_ORIGIN; big file: $BIG_MIB MiB random ($BIG_BYTES bytes)."
    echo "- Each run: a fresh server, a probe fetch (warms ARP), then 1 client fetching the big file and"
    echo "  $CLIENTS fetching the small one, all forked beforehand and released at the same instant t0:"
    echo "  \`atftp --option \"blksize $BLKSIZE\" [--option \"windowsize $WINDOW\"] -g -r FILE -l OUT $SRV_IP\`;"
    echo "  windowsize only for host-sim and atftpd. Every file compared with cmp. $REPS repetitions,"
    echo "  in rounds (every server once per round, the order rotating); medians below."
    if (( ${#HTTP_SERVERS} )); then
        echo "- HTTP: \`wrk -t2 -c$HTTP_CONNS -d${HTTP_DURATION}s --timeout 5s --latency -s wrk.lua http://$SRV_IP/boot.ipxe\`"
        echo "  (keep-alive; the script rotates over $HTTP_CONNS \`?mac=\` values); $REPS repetitions, medians."
    fi
    echo
    echo "## TFTP: PXE storm"
    echo
    echo "Storm = from t0 until the last of the $CLIENTS small transfers is done; big = the $BIG_MIB MiB"
    echo "transfer's own time (running alongside); aggregate = bytes delivered correctly by all"
    echo "$((CLIENTS + 1)) transfers / time until the last one is done (MB = 10^6 bytes); failures ="
    echo "transfers that exited non-zero, timed out or differ from the original, summed over the runs."
    echo
    echo "| server | storm s (median) | $BIG_MIB MiB s (median) | aggregate MB/s (median) | failures / transfers | storm s per run |"
    echo "|---|---:|---:|---:|---:|---|"
    local s st bg ag fl runs
    for s in $SERVERS; do
        read -r st bg ag fl runs < <(storm_medians "$s")
        local per
        per=$(awk -F'\t' -v s="$s" '$1 == s { printf "%s%s", (n++ ? ", " : ""), (NF > 3 ? $4 : $3) }' "$TSV")
        echo "| $(label "$s") | $st | $bg | $ag | $fl / $((runs * (CLIENTS + 1))) | $per |"
    done
    echo
    storm_ratios
    echo
    echo "### Per run"
    echo
    echo "Fastest small = the quickest of the $CLIENTS small transfers; last start = when the last client"
    echo "got going after t0 (launch spread). Server CPU = user+sys of the server's processes during"
    echo "the storm (n/a for tftpd-hpa: its per-transfer children are not waited for, so not counted)."
    echo "Drops: client UDP rcvbuf / server UDP rcvbuf / frames dropped into apl0 (host-sim only)."
    echo "Client pkts/block = datagrams the clients sent (RRQs, ACKs) per DATA block: ~1 lockstep,"
    echo "~1/$WINDOW when windowsize $WINDOW was granted. Client timeouts = atftp \"timeout\""
    echo "lines (it resent a request or an ACK). host-sim = its own counters at exit. Busy % ="
    echo "how busy the $(nproc) CPUs were (other people's work) in the second before the run, the server idle."
    echo
    echo "| server | rep | status | storm s | $BIG_MIB MiB s | all done s | MB/s | failures | fastest small s | last start s | server CPU ms | drops c/s/tap | client pkts/block | client timeouts | busy % before | host-sim counters |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"
    awk -F'\t' -v n="$CLIENTS" '
        NF <= 3 { printf "| %s | %s | %s | | | | | %d | | | | | | | | |\n", $1, $2, $3, n + 1; next }
        { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            $1, $2, $3, $4, $5, $6, $7, $8, $11, $12, $13, $14, $15, $17, $18, $16 }' "$TSV"
    if [[ -s $HTSV ]]; then
        echo
        echo "## HTTP: /boot.ipxe latency"
        echo
        echo "Errors = wrk socket errors (connect/read/write/timeout) + non-2xx responses, summed over runs."
        echo
        echo "| server | requests/s (median) | p50 ms (median) | p99 ms (median) | errors | requests/s per run |"
        echo "|---|---:|---:|---:|---:|---|"
        for s in $HTTP_SERVERS; do
            local rps p50 p99 err per
            rps=$(col "$HTSV" "$s" 4 | median)
            p50=$(col "$HTSV" "$s" 5 | median)
            p99=$(col "$HTSV" "$s" 6 | median)
            err=$(awk -F'\t' -v s="$s" '$1 == s && NF > 3 { split($8, e, "/"); for (i in e) t += e[i] }
                $1 == s && $3 != "ok" { bad++ } END { printf "%d%s", t, (bad ? " (+" bad " failed runs)" : "") }' "$HTSV")
            per=$(awk -F'\t' -v s="$s" '$1 == s { printf "%s%s", (n++ ? ", " : ""), (NF > 3 ? $4 : $3) }' "$HTSV")
            local lab=$s
            [[ $s == host-sim ]] && lab="host-sim (rendered per request)"
            [[ $s == nginx ]] && lab="nginx, 1 worker (static copy of the script)"
            [[ $s == nginx-2w ]] && lab="nginx, 2 workers (static copy of the script)"
            echo "| $lab | $rps | $p50 | $p99 | $err | $per |"
        done
        echo
        echo "TCP opens = connections the client opened during the run ($HTTP_CONNS + 1, wrk's start-up probe, = all requests on kept-alive"
        echo "connections). Busy % = other people's load in the second before the run."
        echo
        echo "| server | rep | status | requests/s | p50 ms | p99 ms | requests | errors c/r/w/t/non2xx | TCP opens | server CPU ms | busy % before |"
        echo "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|"
        awk -F'\t' 'NF <= 3 { printf "| %s | %s | %s | | | | | | | | |\n", $1, $2, $3; next }
            { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $11, $9, $10 }' "$HTSV"
        http_ratios
    fi
}

storm_ratios() {
    ((CLIENTS > 0)) || return 0
    local -A ST
    local s st _
    for s in $SERVERS; do
        read -r st _ < <(storm_medians "$s")
        ST[$s]=$st
    done
    [[ -n ${ST[tftpd-hpa]:-} && ${ST[tftpd-hpa]} != - ]] || return 0
    echo "Speed-up of the storm over tftpd-hpa (> 1 = faster than tftpd-hpa): the ratio of the median"
    echo "storm times, and the median of the per-round ratios (tftpd-hpa's storm / this server's in the"
    echo "same round, which cancels slow phases of the shared machine), with their range:"
    echo
    for s in $SERVERS; do
        [[ $s == tftpd-hpa || ${ST[$s]} == - ]] && continue
        local paired
        paired=$(awk -F'\t' -v s="$s" '
            NF > 3 && $1 == "tftpd-hpa" { t[$2] = $4 }
            NF > 3 && $1 == s { m[$2] = $4 }
            END { for (r in t) if ((r in m) && m[r] > 0) print t[r] / m[r] }' "$TSV" | sort -g |
            awk '{ v[NR] = $1 } END { if (NR) printf "%.2fx (%.2f-%.2f, %d rounds)", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR], NR; else printf "-" }')
        awk -v l="$(label "$s")" -v a="${ST[tftpd-hpa]}" -v b="${ST[$s]}" -v p="$paired" 'BEGIN {
            r = a / b; v = ""
            if (l ~ /^host-sim/) v = (r >= 1.5 ? "; target >= 1.5x: met" : "; target >= 1.5x: NOT met")
            printf "- %s: %.2fx of the medians, per round %s%s\n", l, r, p, v }'
    done
}

http_ratios() {
    [[ " $HTTP_SERVERS " == *" host-sim "* ]] || return 0
    local hr hp h99 peer nr np n99
    hr=$(col "$HTSV" host-sim 4 | median)
    hp=$(col "$HTSV" host-sim 5 | median)
    h99=$(col "$HTSV" host-sim 6 | median)
    [[ $hr != - ]] || return 0
    echo
    for peer in $HTTP_SERVERS; do
        [[ $peer != host-sim ]] || continue
        nr=$(col "$HTSV" "$peer" 4 | median)
        np=$(col "$HTSV" "$peer" 5 | median)
        n99=$(col "$HTSV" "$peer" 6 | median)
        [[ $nr != - ]] || continue
        awk -v p="$peer" -v hr="$hr" -v nr="$nr" -v hp="$hp" -v np="$np" -v h99="$h99" -v n99="$n99" 'BEGIN {
            printf "- host-sim / %s: requests/s %.2fx, p50 latency %.2fx, p99 latency %.2fx (latency: < 1 = lower).\n",
                p, hr / nr, (np > 0 ? hp / np : 0), (n99 > 0 ? h99 / n99 : 0) }'
    done
}

# ---------------------------------------------------------------- main
if [[ " $SERVERS $HTTP_SERVERS " == *" host-sim"* ]]; then
    # Run a copy: a rebuild during the run must not change the binary under test.
    mkdir -p "$TMP/bin"
    cp "$HOST_SIM" "$TMP/bin/host-sim"
    HOST_SIM_BUILT=$(date -r "$HOST_SIM" '+%F %T')
    HOST_SIM_TREE=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) || HOST_SIM_TREE="no commit"
    [[ -z $(cd "$ROOT" && git status --porcelain -- host-sim appliance 2>/dev/null) ]] ||
        HOST_SIM_TREE="$HOST_SIM_TREE + uncommitted changes in host-sim/ or appliance/"
    HOST_SIM_SRC=$HOST_SIM
    HOST_SIM=$TMP/bin/host-sim
fi

make_files
setup_topology
: >"$TSV"
: >"$HTSV"
if [[ -n $HTTP_SERVERS ]]; then
    write_wrk_lua
    fetch_reference_script
fi
# Rounds: every server once per round; the order rotates from round to round so that no server
# always runs right after the same neighbour (or first, on a cooler machine).
read -ra SV <<<"$SERVERS"
read -ra HV <<<"$HTTP_SERVERS"
for rep in $(seq "$REPS"); do
    for k in "${!SV[@]}"; do
        run_storm "${SV[$(((k + rep - 1) % ${#SV[@]}))]}" "$rep"
    done
    for k in "${!HV[@]}"; do
        run_http "${HV[$(((k + rep - 1) % ${#HV[@]}))]}" "$rep"
    done
done

OUT=${REPORT:-$RESULTS/tftp-$STAMP.md}
render | tee "$OUT" "$RAW/report.md"
log "report: $OUT, raw logs: $RAW"
