//! The boot asset store on the host: a directory, read with positioned reads so many
//! transfers share one open file each without seeking.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use appliance::assets::{Asset, AssetError, AssetStore, Name};

/// Files open at once; a transfer holds one, so this bounds concurrent transfers' files.
const MAX_OPEN: usize = 1024;

pub struct DirStore {
    root: PathBuf,
    open: Vec<Option<File>>,
}

impl DirStore {
    pub fn new(root: PathBuf) -> DirStore {
        DirStore {
            root,
            open: Vec::new(),
        }
    }
}

impl AssetStore for DirStore {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        // `Name` has no `..` parts and no leading `/`, so the path stays under the root.
        let file = File::open(self.root.join(name.as_str())).map_err(|_| AssetError::NotFound)?;
        let meta = file.metadata().map_err(|_| AssetError::Io)?;
        if !meta.is_file() {
            return Err(AssetError::NotFound);
        }
        let slot = match self.open.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.open.len() < MAX_OPEN => {
                self.open.push(None);
                self.open.len() - 1
            }
            None => return Err(AssetError::Busy),
        };
        self.open[slot] = Some(file);
        Ok(Asset {
            id: slot as u32,
            size: meta.len(),
        })
    }

    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        let file = self
            .open
            .get(asset.id as usize)
            .and_then(Option::as_ref)
            .ok_or(AssetError::NotFound)?;
        let mut read = 0;
        while read < buf.len() {
            match file.read_at(&mut buf[read..], offset + read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(AssetError::Io),
            }
        }
        Ok(read)
    }

    fn close(&mut self, asset: Asset) {
        if let Some(slot) = self.open.get_mut(asset.id as usize) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use appliance::assets::normalize;

    use super::*;

    #[test]
    fn reads_files_under_the_root_only() {
        let dir = std::env::temp_dir().join(format!("host-sim-assets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), b"0123456789").unwrap();
        let mut store = DirStore::new(dir.clone());
        let a = store.open(&normalize(b"/sub/f").unwrap()).unwrap();
        assert_eq!(a.size, 10);
        let mut buf = [0u8; 4];
        assert_eq!(store.read(a, 8, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"89");
        store.close(a);
        assert_eq!(store.read(a, 0, &mut buf), Err(AssetError::NotFound));
        assert_eq!(
            store.open(&normalize(b"sub").unwrap()),
            Err(AssetError::NotFound),
            "a directory"
        );
        assert_eq!(
            store.open(&normalize(b"missing").unwrap()),
            Err(AssetError::NotFound)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
