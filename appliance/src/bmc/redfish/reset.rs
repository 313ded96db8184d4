//! ComputerSystem.Reset types: which one a [`PowerAction`] becomes, given the types the BMC
//! lists in `ResetType@Redfish.AllowableValues`, and the power state it should end in.

use core::fmt;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

use crate::bmc::{PowerAction, PowerState};

/// The reset types the client sends (a subset of Redfish's `ResetType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
    PowerCycle,
}

impl ResetType {
    const ALL: [ResetType; 5] = [
        ResetType::On,
        ResetType::ForceOff,
        ResetType::GracefulShutdown,
        ResetType::ForceRestart,
        ResetType::PowerCycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::PowerCycle => "PowerCycle",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Preferred reset types for `action`, best first.
    fn candidates(action: PowerAction) -> &'static [ResetType] {
        match action {
            PowerAction::On => &[ResetType::On],
            PowerAction::Off => &[ResetType::ForceOff],
            PowerAction::SoftOff => &[ResetType::GracefulShutdown],
            PowerAction::Cycle => &[ResetType::PowerCycle, ResetType::ForceRestart],
            PowerAction::HardReset => &[ResetType::ForceRestart, ResetType::PowerCycle],
        }
    }
}

/// The power state a machine settles in after `action`.
pub fn expected_state(action: PowerAction) -> PowerState {
    match action {
        PowerAction::Off | PowerAction::SoftOff => PowerState::Off,
        PowerAction::On | PowerAction::Cycle | PowerAction::HardReset => PowerState::On,
    }
}

/// The reset types a BMC allows (the known ones; others it lists are ignored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetTypes(u8);

impl ResetTypes {
    pub fn contains(self, t: ResetType) -> bool {
        self.0 & t.bit() != 0
    }

    pub fn with(self, t: ResetType) -> ResetTypes {
        ResetTypes(self.0 | t.bit())
    }
}

/// The reset type to send for `action`: the first candidate the BMC allows, or the
/// preferred one when the BMC lists none. `None`: the BMC allows no candidate.
pub fn choose(action: PowerAction, allowed: Option<ResetTypes>) -> Option<ResetType> {
    let candidates = ResetType::candidates(action);
    match allowed {
        None => candidates.first().copied(),
        Some(a) => candidates.iter().copied().find(|&t| a.contains(t)),
    }
}

impl<'de> Deserialize<'de> for ResetTypes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = ResetTypes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of reset types")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ResetTypes, A::Error> {
                let mut set = ResetTypes::default();
                while let Some(name) = seq.next_element::<&'de str>()? {
                    if let Some(t) = ResetType::ALL.iter().find(|t| t.as_str() == name) {
                        set = set.with(*t);
                    }
                }
                Ok(set)
            }
        }
        d.deserialize_seq(Names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_falls_back_to_force_restart() {
        let sushy = ResetTypes::default()
            .with(ResetType::On)
            .with(ResetType::ForceOff)
            .with(ResetType::ForceRestart);
        assert_eq!(
            choose(PowerAction::Cycle, Some(sushy)),
            Some(ResetType::ForceRestart)
        );
        assert_eq!(
            choose(PowerAction::Cycle, None),
            Some(ResetType::PowerCycle)
        );
        assert_eq!(choose(PowerAction::SoftOff, Some(sushy)), None);
        assert_eq!(choose(PowerAction::On, Some(sushy)), Some(ResetType::On));
    }
}
