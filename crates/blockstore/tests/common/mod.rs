//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use blockstore::{BlockStore, BlockStoreOptions, IoLimits, ObjectStoreSpec, SnapshotState};

pub async fn open_local(dir: &Path, chunk_size: u64) -> BlockStore {
    BlockStore::open_with(
        &dir.join("data"),
        ObjectStoreSpec::Local(dir.join("objects")),
        BlockStoreOptions { chunk_size },
    )
    .await
    .expect("open blockstore")
}

/// Waits (bounded) until a snapshot leaves `pending`, returning its final state.
pub async fn wait_snapshot(store: &BlockStore, id: &str) -> SnapshotState {
    for _ in 0..3000 {
        let status = store.snapshot_status(id).expect("snapshot exists");
        if status.state != SnapshotState::Pending {
            return status.state;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("snapshot {id} still pending after 30 s");
}

/// Waits (bounded) until a volume has copied all of its source snapshot.
pub async fn wait_hydrated(store: &BlockStore, id: &str) {
    for _ in 0..3000 {
        if store
            .volume_info(id)
            .expect("volume exists")
            .hydrated_percent
            == 100
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("volume {id} still hydrating after 30 s");
}

/// Bytes that differ per 512-byte sector and per 128 KiB, so chunks do not deduplicate.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i / 512) as u8).wrapping_mul(31) ^ (i >> 17) as u8)
        .collect()
}

/// Creates an unthrottled volume of `size` bytes filled with `pattern(seed, size)`, and
/// returns that content.
pub async fn volume_with_pattern(store: &BlockStore, id: &str, size: u64, seed: u8) -> Vec<u8> {
    store
        .create_volume(id, size, None, IoLimits::UNLIMITED)
        .await
        .expect("create volume");
    let content = pattern(seed, size as usize);
    store
        .write(id, 0, content.clone(), false)
        .await
        .expect("write pattern");
    content
}

/// Takes a snapshot of `volume` and waits until it has completed.
pub async fn completed_snapshot(store: &BlockStore, id: &str, volume: &str) {
    store
        .create_snapshot(id, volume)
        .await
        .expect("create snapshot");
    assert_eq!(wait_snapshot(store, id).await, SnapshotState::Completed);
}
