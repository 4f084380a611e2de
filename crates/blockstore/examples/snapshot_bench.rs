//! Snapshot benchmark: create latency, restore-to-first-read latency and bytes stored for a
//! volume with 1% changed since its previous snapshot. Prints `key value` lines.
//!
//! `snapshot_bench WORK_DIR [SIZE_MIB]` (default 1024).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use blockstore::{BlockStore, IoLimits, ObjectStoreSpec, SnapshotState, EBS_BLOCK_SIZE};

/// Incompressible-ish data, different for every call.
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn wait(store: &BlockStore, id: &str) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    loop {
        match store.snapshot_status(id).map(|s| s.state) {
            Some(SnapshotState::Completed) => return Ok(start.elapsed()),
            Some(SnapshotState::Pending) => tokio::time::sleep(Duration::from_millis(2)).await,
            other => return Err(format!("snapshot {id} ended as {other:?}").into()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .ok_or("usage: snapshot_bench WORK_DIR [SIZE_MIB]")?,
    );
    let size_mib: u64 = args.get(2).map_or(Ok(1024), |s| s.parse())?;
    let size = size_mib << 20;
    let store = BlockStore::open(
        &dir.join("data"),
        ObjectStoreSpec::Local(dir.join("objects")),
    )
    .await?;
    store
        .create_volume("vol-bench", size, None, IoLimits::UNLIMITED)
        .await?;
    let mut seed = 0x2545_f491_4f6c_dd1d;
    let step = 4u64 << 20;
    for offset in (0..size).step_by(step as usize) {
        store
            .write("vol-bench", offset, noise(&mut seed, step as usize), false)
            .await?;
    }
    store.flush("vol-bench").await?;
    store.create_snapshot("snap-full", "vol-bench").await?;
    let full_upload = wait(&store, "snap-full").await?;

    // 1% of the volume changes, as whole 512 KiB blocks at random places.
    let blocks = size / EBS_BLOCK_SIZE;
    let changed = (blocks / 100).max(1);
    for _ in 0..changed {
        let block = noise(&mut seed, 8)
            .iter()
            .fold(0u64, |a, b| a << 8 | *b as u64)
            % blocks;
        store
            .write(
                "vol-bench",
                block * EBS_BLOCK_SIZE,
                noise(&mut seed, EBS_BLOCK_SIZE as usize),
                false,
            )
            .await?;
    }
    let start = Instant::now();
    store.create_snapshot("snap-1pct", "vol-bench").await?;
    let create = start.elapsed();
    let upload = wait(&store, "snap-1pct").await?;
    let stored = store
        .snapshot_status("snap-1pct")
        .ok_or("no status")?
        .stored_bytes;

    let start = Instant::now();
    store
        .create_volume("vol-restored", size, Some("snap-1pct"), IoLimits::UNLIMITED)
        .await?;
    let first = store.read("vol-restored", size / 2, 4096).await?;
    let first_read = start.elapsed();
    let expected = store.read("vol-bench", size / 2, 4096).await?;
    if first != expected {
        return Err("the restored volume differs".into());
    }
    println!("volume_bytes {size}");
    println!(
        "full_snapshot_upload_ms {:.1}",
        full_upload.as_secs_f64() * 1e3
    );
    println!("changed_bytes {}", changed * EBS_BLOCK_SIZE);
    println!("snapshot_create_ms {:.3}", create.as_secs_f64() * 1e3);
    println!("incremental_upload_ms {:.1}", upload.as_secs_f64() * 1e3);
    println!("incremental_stored_bytes {stored}");
    println!(
        "restore_first_read_ms {:.3}",
        first_read.as_secs_f64() * 1e3
    );
    Ok(())
}
