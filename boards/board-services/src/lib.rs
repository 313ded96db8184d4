//! The appliance's services as embassy-net tasks, the same on every board: DHCP with its
//! leases in a NOR-flash journal, TFTP and HTTP from an asset store. A board brings up its
//! clock, NIC and stack, then runs these from its own tasks (embassy tasks cannot be
//! generic, so each board names its types in a few lines of task wrappers).
//!
//! What differs per board is a parameter: the flash holding the leases (any
//! `embedded_storage` `NorFlash`, with its geometry in [`store::LeaseFlash`]), the wall-clock
//! time at boot (`unix_at_boot`: an RTC, or the host's in QEMU; the monotonic time is
//! embassy-time, whose driver the board provides), and the boot files (any
//! `appliance::assets::AssetStore`; [`assets::Layered`] puts a region over built-in files).
//! The config and asset regions are read in place by [`regions`], at the addresses the
//! board's `memory.x` gives them.
//!
//! Bare-metal only: on the host (`cargo test/clippy --workspace`) the crate is empty.
#![no_std]

#[cfg(all(target_os = "none", feature = "uplink"))]
extern crate alloc;

#[cfg(target_os = "none")]
pub mod assets;
#[cfg(all(target_os = "none", feature = "uplink"))]
pub mod blob;
#[cfg(target_os = "none")]
pub mod dhcp;
#[cfg(all(target_os = "none", feature = "uplink"))]
pub mod heap;
#[cfg(target_os = "none")]
pub mod http;
#[cfg(all(target_os = "none", feature = "uplink"))]
pub mod power;
#[cfg(target_os = "none")]
pub mod regions;
#[cfg(target_os = "none")]
pub mod store;
#[cfg(target_os = "none")]
pub mod tftp;
#[cfg(all(target_os = "none", feature = "uplink"))]
pub mod uplink;

/// embassy-net sockets the services use: DHCP's, TFTP's two (port 69 and the transfers'), one
/// per HTTP connection. A board adds its own and sizes `StackResources` with this.
#[cfg(target_os = "none")]
pub const SOCKETS: usize = 1 + tftp::SOCKETS + http::CONNECTIONS;

/// Defines the board's TFTP task and HTTP task pool (embassy tasks cannot be generic, so they
/// are made in the board's crate, which needs `embassy-executor`, `embassy-net`, `static_cell`
/// and `appliance` as dependencies) and `spawn_services(spawner, stack, ip, built_in)`, which
/// reads the asset region, renders the script config and starts TFTP and HTTP (port
/// [`http::PORT`]) serving the region over `built_in`. DHCP, which needs the board's flash and
/// clock, the board runs itself ([`dhcp::serve`]).
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! service_tasks {
    () => {
        #[embassy_executor::task]
        async fn tftp_task(stack: embassy_net::Stack<'static>, store: $crate::regions::Store) -> ! {
            $crate::tftp::serve(stack, store).await
        }

        #[embassy_executor::task(pool_size = $crate::http::CONNECTIONS)]
        async fn http_task(
            stack: embassy_net::Stack<'static>,
            script: &'static appliance::http::ScriptConfig<'static>,
            store: $crate::regions::Store,
        ) -> ! {
            $crate::http::serve(stack, $crate::http::PORT, script, store).await
        }

        /// Starts TFTP and the HTTP connections (boot-time init: a task that cannot be
        /// spawned is a build mistake, so it panics).
        fn spawn_services(
            spawner: embassy_executor::Spawner,
            stack: embassy_net::Stack<'static>,
            ip: core::net::Ipv4Addr,
            built_in: &'static [(&'static str, &'static [u8])],
        ) {
            static SCRIPT: static_cell::StaticCell<appliance::http::ScriptConfig<'static>> =
                static_cell::StaticCell::new();
            let region = $crate::regions::assets();
            let script = SCRIPT.init($crate::regions::script(ip, &region));
            let tftp = tftp_task(stack, $crate::regions::store(region, built_in));
            spawner.spawn(defmt::unwrap!(tftp)); // ok: boot-time init, one task instance
            for _ in 0..$crate::http::CONNECTIONS {
                let http = http_task(stack, script, $crate::regions::store(region, built_in));
                spawner.spawn(defmt::unwrap!(http)); // ok: boot-time init, the pool holds CONNECTIONS
            }
            defmt::info!(
                "http listening port={} connections={}",
                $crate::http::PORT,
                $crate::http::CONNECTIONS
            );
        }
    };
}
