//! blockstore: the EBS data path of nimbus.
//!
//! Thin-provisioned, crash-safe volumes stored as sparse files; instant point-in-time
//! snapshots persisted incrementally as content-addressed zstd chunks in an object store;
//! volumes created lazily from snapshots; EBS direct API primitives; per-volume I/O
//! limits; and an NBD server that QEMU and the libnbd tools connect to.
//! See `docs/blockstore.md` for the design.

mod data_file;
mod direct;
mod error;
mod io_counters;
mod limits;
mod nbd;
mod objects;
mod pending;
mod private;
mod snapshot;
mod store;
mod vm_socket;
mod volume;

pub use direct::{BlockRef, ChangedBlock};
pub use error::{Error, Result};
pub use io_counters::VolumeCounters;
pub use limits::IoLimits;
pub use nbd::{bind_nbd_unix, ExportFilter};
pub use objects::{ObjectStoreSpec, SnapshotState};
pub use store::{BlockStore, BlockStoreOptions, SnapshotStatus, VolumeInfo};
pub use vm_socket::VmSocket;

/// Block size of the EBS direct APIs and the default snapshot chunk size: 512 KiB.
pub const EBS_BLOCK_SIZE: u64 = 512 << 10;
