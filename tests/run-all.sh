#!/usr/bin/env bash
# Runs every test: formatting and lints, the firmware build, unit tests, the end-to-end
# tests against real peers (as root; they skip otherwise), and a short fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

step() { printf '\n== %s\n' "$*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "appliance for the board target (thumbv7em-none-eabihf)"
cargo build -p appliance --target thumbv7em-none-eabihf --profile size
llvm_size=$(find "$(rustc --print sysroot)" -name llvm-size -type f | head -n 1)
echo "appliance code for thumbv7em-none-eabihf, opt-level z (generic code instantiated by a board is not included):"
"$llvm_size" -t target/thumbv7em-none-eabihf/size/libappliance.rlib | tail -n 1

step "firmware lints (the workspace's clippy sees the boards as host stubs)"
for features in "" "--features uplink"; do
    # shellcheck disable=SC2086 # the features flag is two words or none
    cargo clippy -p qemu-mps2-an386 --target thumbv7em-none-eabihf --release $features -- -D warnings
done
cargo clippy -p nucleo-h743zi --target thumbv7em-none-eabihf --release -- -D warnings

step "firmware for the QEMU board (boards/qemu-mps2-an386), release"
cargo build -p qemu-mps2-an386 --release --target thumbv7em-none-eabihf
"$llvm_size" target/thumbv7em-none-eabihf/release/qemu-mps2-an386
# Flash and static RAM by section and by crate; fails if over the board's line in budget.txt.
cargo run -q -p images -- footprint target/thumbv7em-none-eabihf/release/qemu-mps2-an386 \
    --budget boards/budget.txt --board qemu-mps2-an386

step "firmware for the QEMU board with its uplink and 64 TFTP transfers (the variant e2e firmware_tftp runs)"
cargo build -p qemu-mps2-an386 --profile firmware --target thumbv7em-none-eabihf \
    --features uplink,board-services/tftp-transfers-64
cp target/thumbv7em-none-eabihf/firmware/qemu-mps2-an386 \
    target/thumbv7em-none-eabihf/firmware/qemu-mps2-an386-tftp64
cargo run -q -p images -- footprint target/thumbv7em-none-eabihf/firmware/qemu-mps2-an386-tftp64 \
    --budget boards/budget.txt --board qemu-mps2-an386+uplink+tftp64

step "firmware for the QEMU board with its uplink (TLS), profile firmware (size, fat LTO)"
cargo build -p qemu-mps2-an386 --profile firmware --target thumbv7em-none-eabihf --features uplink
cargo run -q -p images -- footprint target/thumbv7em-none-eabihf/firmware/qemu-mps2-an386 \
    --budget boards/budget.txt --board qemu-mps2-an386+uplink

step "firmware for the NUCLEO-H743ZI board (boards/nucleo-h743zi), release: built and measured, not run"
cargo build -p nucleo-h743zi --release --target thumbv7em-none-eabihf
cargo run -q -p images -- footprint target/thumbv7em-none-eabihf/release/nucleo-h743zi \
    --budget boards/budget.txt --board nucleo-h743zi

step "flashable image of the QEMU board (images build; the e2e tests run this binary)"
cargo run -q -p images -- build --board qemu-mps2-an386 --ip 10.77.0.1/24 \
    --dhcp-pool 10.77.0.100-10.77.0.199 -o target/images/qemu-mps2-an386

step "host simulator: the boot storm (virtual time), the main job with tunnel cuts and appliance restarts, then driven from the stand-in Omni"
# Debug builds (the e2e tests use them too); small files keep the real-time run short.
cargo build -p host-sim -p provider
cargo run -q -p host-sim -- rack --boot-only --machines 48 --seed 1
cargo run -q -p host-sim -- rack --machines 48 --seed 1 --cuts 5 --restarts 2 --kernel-kib 128
# The lifecycle from the stand-in Omni through the provider's Omni adapter, its watches
# dropped at each tunnel cut (about 70 s).
cargo run -q -p host-sim -- rack --machines 8 --seed 1 --kernel-kib 128 --omni --cuts 3

step "fuzz: every target, ${FUZZ_SECONDS}s each"
(
    cd appliance/fuzz
    for target in $(RUSTC_BOOTSTRAP=1 cargo fuzz list); do
        echo "-- $target"
        mkdir -p "corpus/$target"
        seeds=()
        [ -d "seeds/$target" ] && seeds=("seeds/$target")
        RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
            -max_total_time="$FUZZ_SECONDS" 2>&1 | tail -n 2
    done
)

step "unit and end-to-end tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole run: cargo ends on the doc tests' "0 passed".
awk '/^test result:/ { p += $4; f += $6 } END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
