//! The one error type of the blockstore.

/// Everything that can go wrong in the blockstore, as a sentence a caller can show.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("The volume '{0}' does not exist.")]
    VolumeNotFound(String),
    #[error("The volume '{0}' already exists.")]
    VolumeExists(String),
    #[error("The snapshot '{0}' does not exist.")]
    SnapshotNotFound(String),
    #[error("The snapshot '{0}' already exists.")]
    SnapshotExists(String),
    #[error("The snapshot '{0}' is not completed.")]
    SnapshotNotCompleted(String),
    #[error("The snapshot '{0}' is not pending, so it takes no more blocks.")]
    SnapshotNotPending(String),
    #[error("The snapshots '{0}' and '{1}' do not share a block size.")]
    SnapshotsIncompatible(String, String),
    #[error("The identifier '{0}' is not valid: use letters, digits, '-' and '_' only.")]
    InvalidId(String),
    #[error("Invalid size: {0}")]
    InvalidSize(String),
    #[error("The range {offset}+{length} is outside the volume of {size} bytes.")]
    OutOfRange { offset: u64, length: u64, size: u64 },
    #[error("The block index {index} is outside the snapshot of {blocks} blocks.")]
    BlockOutOfRange { index: u64, blocks: u64 },
    #[error("A block must be exactly {expected} bytes, got {got}.")]
    BlockSize { expected: usize, got: usize },
    #[error("The changed-block count {expected} does not match the {got} blocks written.")]
    ChangedBlocksCount { expected: u64, got: u64 },
    #[error("The stored chunk '{0}' is damaged: its content does not match its hash.")]
    CorruptChunk(String),
    #[error("The stored data '{0}' cannot be decoded: {1}")]
    CorruptMetadata(String, String),
    #[error("The object store failed: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("An I/O error occurred: {0}")]
    Io(#[from] std::io::Error),
    #[error("A background task failed: {0}")]
    Task(String),
    #[error("The work was cut short because the service is stopping.")]
    Stopping,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        if e.is_cancelled() {
            return Error::Stopping;
        }
        Error::Task(e.to_string())
    }
}
