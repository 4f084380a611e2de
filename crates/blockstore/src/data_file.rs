//! A volume's sparse raw data file, and how nimbus uses the page cache with it.
//!
//! Writes are buffered (FLUSH and FUA make them durable), so small writes cost a copy into
//! the page cache. The page cache sizes its folios by the request, though: one buffered
//! 1 MiB write, or the readahead of a 1 MiB read, leaves 1 MiB folios, and every later
//! 4 KiB write into one walks all 256 of its block buffers (ext4). That made 4 KiB random
//! writes after a sequential fill or read 3-4x slower. So writes go in pieces of at most
//! [`WRITE_PIECE`], and reads that miss the cache use `RWF_DONTCACHE` where the kernel has
//! it (Linux 6.14+): what they bring in is dropped once copied, like QEMU's `cache=none`
//! for reads, so the host does not cache a second copy of what the guest caches.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;

use rustix::io::{preadv2, Errno, ReadWriteFlags};

use crate::error::{Error, Result};

/// Buffered writes go to the file at most this many bytes per call (one syscall each).
const WRITE_PIECE: usize = 64 << 10;
/// `RWF_DONTCACHE`, which rustix does not name yet.
const DONTCACHE: ReadWriteFlags = ReadWriteFlags::from_bits_retain(0x80);

pub(crate) struct DataFile {
    file: File,
    /// Flags for reads that may miss the page cache: `DONTCACHE` when the kernel and the
    /// file system support it, else none.
    uncached_read: ReadWriteFlags,
}

impl DataFile {
    pub fn new(file: File) -> Self {
        let mut probe = [0u8; 1];
        let supported = preadv2(&file, &mut [IoSliceMut::new(&mut probe)], 0, DONTCACHE).is_ok();
        DataFile {
            file,
            uncached_read: if supported {
                DONTCACHE
            } else {
                ReadWriteFlags::empty()
            },
        }
    }

    /// Reads from the page cache without blocking (`RWF_NOWAIT`), so cached reads run in
    /// the calling task instead of paying a hand-off to the blocking thread pool. False
    /// when any of the range is not cached (its readahead has then been started).
    pub fn read_cached(&self, buf: &mut [u8], offset: u64) -> bool {
        let length = buf.len();
        let flags = ReadWriteFlags::NOWAIT | self.uncached_read;
        matches!(preadv2(&self.file, &mut [IoSliceMut::new(buf)], offset, flags), Ok(n) if n == length)
    }

    /// Reads all of `buf`, blocking; what was not cached is not kept in the cache.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
        while !buf.is_empty() {
            let slices = &mut [IoSliceMut::new(buf)];
            match preadv2(&self.file, slices, offset, self.uncached_read) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub fn write_all_at(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        for (index, piece) in data.chunks(WRITE_PIECE).enumerate() {
            self.file
                .write_all_at(piece, offset + (index * WRITE_PIECE) as u64)?;
        }
        Ok(())
    }

    /// Deallocates the range, which then reads as zeros.
    pub fn punch_hole(&self, offset: u64, length: u64) -> Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        if length == 0 {
            return Ok(());
        }
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        fallocate(&self.file, flags, offset, length).map_err(|e| Error::Io(e.into()))
    }

    /// Which chunks of the file hold allocated extents (the rest are holes).
    pub fn allocated_chunks(&self, size: u64, chunk_size: u64) -> Result<Vec<bool>> {
        use rustix::fs::{seek, SeekFrom};
        let mut allocated = vec![false; size.div_ceil(chunk_size) as usize];
        let mut offset = 0;
        while offset < size {
            let start = match seek(&self.file, SeekFrom::Data(offset)) {
                Ok(start) if start < size => start,
                Ok(_) | Err(Errno::NXIO) => break,
                Err(e) => return Err(Error::Io(e.into())),
            };
            let end = seek(&self.file, SeekFrom::Hole(start))
                .map_err(|e| Error::Io(e.into()))?
                .min(size);
            for chunk in start / chunk_size..end.div_ceil(chunk_size) {
                allocated[chunk as usize] = true;
            }
            offset = end.max(start + 1);
        }
        Ok(allocated)
    }

    pub fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    pub fn set_len(&self, size: u64) -> std::io::Result<()> {
        self.file.set_len(size)
    }

    /// Bytes of disk the file takes.
    pub fn allocated_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().map(|m| m.blocks() * 512).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both read modes: with `RWF_DONTCACHE` where this kernel has it, and without.
    #[test]
    fn reads_what_was_written_in_pieces_and_zeros_after_a_hole_is_punched() {
        for uncached_read in [DONTCACHE, ReadWriteFlags::empty()] {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(dir.path().join("data"))
                .expect("open");
            file.set_len(4 << 20).expect("set_len");
            let data_file = DataFile::new(file);
            let data_file = DataFile {
                uncached_read: uncached_read & data_file.uncached_read,
                ..data_file
            };
            let data: Vec<u8> = (0..3 * WRITE_PIECE + 123)
                .map(|i| (i % 251) as u8)
                .collect();
            data_file.write_all_at(&data, 4096 + 7).expect("write");
            let mut back = vec![0; data.len()];
            data_file.read_exact_at(&mut back, 4096 + 7).expect("read");
            assert_eq!(back, data);
            let mut cached = vec![0; 4096];
            assert!(data_file.read_cached(&mut cached, 8192));
            assert_eq!(cached, data[8192 - 4096 - 7..][..4096]);
            data_file.punch_hole(0, 1 << 20).expect("punch");
            let mut zeros = vec![1; 4096];
            data_file.read_exact_at(&mut zeros, 8192).expect("read");
            assert!(zeros.iter().all(|b| *b == 0));
            let mut past_end = vec![0; 8192];
            assert!(data_file
                .read_exact_at(&mut past_end, (4 << 20) - 4096)
                .is_err());
        }
    }
}
