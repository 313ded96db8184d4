//! `provider serve`'s power flags: how the appliances pace the BMCs (sent to every appliance
//! in its config).

use crate::store::StoreConfig;

use super::parse_duration;

#[derive(clap::Args)]
pub struct PowerArgs {
    /// How often each appliance reads every BMC's power state (Omni's provider: 30 s).
    #[arg(long, default_value = "30", value_parser = parse_duration)]
    power_poll: u64,
    /// Least time between a machine's power-on and the next power-off, so a slow boot is
    /// never cut (Omni's provider: 15 min). 0: none.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    min_on_before_off: u64,
}

impl PowerArgs {
    /// Sets the appliance configuration from the flags, refusing what the wire cannot carry.
    pub fn apply(self, config: &mut StoreConfig) -> Result<(), String> {
        config.appliance.power_poll_secs = u16::try_from(self.power_poll)
            .ok()
            .filter(|s| *s > 0)
            .ok_or("--power-poll: from 1 s to 65535 s")?;
        config.appliance.min_on_before_off_secs = u32::try_from(self.min_on_before_off)
            .map_err(|_| "--min-on-before-off: at most 4294967295 s")?;
        Ok(())
    }
}
