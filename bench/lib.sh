# Sourced by the benchmarks: the two namespaces and the veth between them, the switch
# between a kernel server on vsrv and host-sim on its TAP, and stopping the server. Uses
# NS_SRV, NS_CLI, SRV_IP, CLI_IP, PREFIX and SERVER_PID from the caller.

setup_topology() {
    ip netns add "$NS_SRV"
    ip netns add "$NS_CLI"
    local ns
    for ns in "$NS_SRV" "$NS_CLI"; do
        ip -n "$ns" link set lo up
        # no IPv6: no router solicitations or DAD on the wire
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    # The veth ends are created inside the namespaces: no name in the root namespace.
    ip link add vsrv netns "$NS_SRV" type veth peer name vcli netns "$NS_CLI"
    ip -n "$NS_CLI" addr add "$CLI_IP/$PREFIX" dev vcli
    ip -n "$NS_CLI" link set vcli up
    # host-sim's side: bridge br0 = { vsrv, apl0 (persistent tap) }, no IP on either.
    ip -n "$NS_SRV" link add br0 type bridge
    ip -n "$NS_SRV" link set br0 type bridge forward_delay 0 stp_state 0
    ip -n "$NS_SRV" tuntap add dev apl0 mode tap
    ip -n "$NS_SRV" link set apl0 master br0
    ip -n "$NS_SRV" link set apl0 up
    ip -n "$NS_SRV" link set br0 up
    ip -n "$NS_SRV" link set vsrv up
}

# kernel: vsrv carries SRV_IP (the kernel servers). tap: vsrv in br0 with apl0 (host-sim).
set_mode() {
    if [[ $1 == kernel ]]; then
        ip -n "$NS_SRV" link set vsrv nomaster
        ip -n "$NS_SRV" addr replace "$SRV_IP/$PREFIX" dev vsrv
    else
        ip -n "$NS_SRV" addr flush dev vsrv
        ip -n "$NS_SRV" link set vsrv master br0
    fi
    ip -n "$NS_SRV" link set vsrv up
    ip -n "$NS_CLI" neigh flush dev vcli
}

# Stops the server SERVER_PID: SIGTERM, up to 5 s, then SIGKILL.
stop_server() {
    [[ -n ${SERVER_PID:-} ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
