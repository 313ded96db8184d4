//! The lease journal's storage on the host: one append-only file, rewritten beside itself
//! and renamed into place on compaction, so a crash leaves either the old or the new log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use appliance::journal::Storage;

pub struct FileStorage {
    path: PathBuf,
    file: File,
    len: usize,
    /// Appended records not yet written: one write per batch, not per lease.
    pending: Vec<u8>,
    rewrite: Option<File>,
}

impl FileStorage {
    pub fn open(path: &Path) -> io::Result<FileStorage> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
        Ok(FileStorage {
            path: path.to_owned(),
            file,
            len,
            pending: Vec::new(),
            rewrite: None,
        })
    }

    fn rewrite_path(&self) -> PathBuf {
        self.path.with_extension("rewrite")
    }
}

impl Storage for FileStorage {
    type Error = io::Error;

    fn len(&self) -> usize {
        self.len + self.pending.len()
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> io::Result<usize> {
        self.flush()?;
        self.file.seek(SeekFrom::Start(offset as u64))?;
        let mut read = 0;
        while read < buf.len() {
            match self.file.read(&mut buf[read..])? {
                0 => break,
                n => read += n,
            }
        }
        Ok(read)
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.len += self.pending.len();
            self.pending.clear();
        }
        Ok(())
    }

    fn rewrite_begin(&mut self) -> io::Result<()> {
        self.rewrite = Some(File::create(self.rewrite_path())?);
        Ok(())
    }

    fn rewrite_append(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self
            .rewrite
            .as_mut()
            .ok_or_else(|| io::Error::other("no rewrite begun"))?;
        file.write_all(data)
    }

    fn rewrite_commit(&mut self) -> io::Result<()> {
        let file = self
            .rewrite
            .take()
            .ok_or_else(|| io::Error::other("no rewrite begun"))?;
        file.sync_all()?;
        drop(file);
        fs::rename(self.rewrite_path(), &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        // Records still pending describe leases the snapshot already holds.
        self.pending.clear();
        *self = FileStorage::open(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use appliance::dhcp::{Lease, LeaseState};
    use appliance::journal::Journal;
    use appliance::net::MacAddr;

    use super::*;

    fn lease(n: u8) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 77, 0, n),
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            state: LeaseState::Bound,
            expires: 99,
        }
    }

    fn reopen(path: &Path) -> (Journal<FileStorage>, Vec<Lease>, usize) {
        let mut seen = vec![];
        let (j, replay) =
            Journal::open(FileStorage::open(path).unwrap(), |l| seen.push(l)).unwrap();
        (j, seen, replay.torn_bytes)
    }

    #[test]
    fn survives_reopen_compaction_and_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("host-sim-journal-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("leases.journal");
        let _ = fs::remove_file(&path);
        let (mut j, seen, _) = reopen(&path);
        assert!(seen.is_empty());
        for n in 1..=3 {
            j.append(&lease(n)).unwrap();
        }
        j.flush().unwrap();
        drop(j);
        let (mut j, seen, _) = reopen(&path);
        assert_eq!(seen, [lease(1), lease(2), lease(3)]);
        j.compact([lease(3)].iter()).unwrap();
        j.append(&lease(4)).unwrap();
        j.flush().unwrap();
        drop(j);
        // A power cut in the middle of the last record.
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_, seen, torn) = reopen(&path);
        assert_eq!((seen, torn), (vec![lease(3)], 21));
        fs::remove_dir_all(&dir).unwrap();
    }
}
