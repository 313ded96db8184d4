//! Boot files from two stores: the board's asset region first, then the files built into
//! the firmware (a marker the tests fetch), so a board without a region still serves those.

use appliance::assets::{Asset, AssetError, AssetStore, Name};

/// The top bit of a handle says which store opened it.
const LOWER: u32 = 1 << 31;

/// `upper`'s files, and `lower`'s where `upper` has none of that name.
#[derive(Clone, Copy)]
pub struct Layered<A, B> {
    pub upper: A,
    pub lower: B,
}

impl<A: AssetStore, B: AssetStore> AssetStore for Layered<A, B> {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        match self.upper.open(name) {
            Ok(a) if a.id & LOWER == 0 => Ok(a),
            Ok(a) => {
                // A handle we cannot tell apart: refuse rather than mix the stores up.
                self.upper.close(a);
                Err(AssetError::Busy)
            }
            Err(AssetError::NotFound) => {
                let a = self.lower.open(name)?;
                if a.id & LOWER != 0 {
                    self.lower.close(a);
                    return Err(AssetError::Busy);
                }
                Ok(Asset {
                    id: a.id | LOWER,
                    ..a
                })
            }
            Err(e) => Err(e),
        }
    }

    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        match asset.id & LOWER {
            0 => self.upper.read(asset, offset, buf),
            _ => self.lower.read(lower(asset), offset, buf),
        }
    }

    fn close(&mut self, asset: Asset) {
        match asset.id & LOWER {
            0 => self.upper.close(asset),
            _ => self.lower.close(lower(asset)),
        }
    }
}

fn lower(asset: Asset) -> Asset {
    Asset {
        id: asset.id & !LOWER,
        ..asset
    }
}
