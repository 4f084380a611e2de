//! Snapshots: point-in-time content, incremental uploads, garbage collection, restarts,
//! the EBS direct API primitives, raw image import and an S3 object store (moto).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use blockstore::{
    BlockStore, BlockStoreOptions, IoLimits, ObjectStoreSpec, SnapshotState, EBS_BLOCK_SIZE,
};

const CHUNK: u64 = EBS_BLOCK_SIZE;
const SIZE: u64 = 8 << 20;

fn chunk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("objects").join("chunks"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_keeps_the_moment_it_was_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_local(dir.path(), CHUNK).await;
    let old = common::volume_with_pattern(&store, "vol-a", SIZE, 1).await;
    store
        .create_snapshot("snap-1", "vol-a")
        .await
        .expect("snapshot");
    // Overwrite at once, while the snapshot is (most likely) still uploading.
    let new = common::pattern(2, SIZE as usize);
    store
        .write("vol-a", 0, new.clone(), false)
        .await
        .expect("overwrite");
    assert_eq!(
        common::wait_snapshot(&store, "snap-1").await,
        SnapshotState::Completed
    );
    let status = store.snapshot_status("snap-1").expect("status");
    assert_eq!((status.progress_percent, status.size_bytes), (100, SIZE));
    assert_eq!(status.volume_id.as_deref(), Some("vol-a"));
    store
        .create_volume("vol-b", SIZE, Some("snap-1"), IoLimits::UNLIMITED)
        .await
        .expect("restore");
    assert!(store.read("vol-b", 0, SIZE as u32).await.expect("read") == old);
    assert!(store.read("vol-a", 0, SIZE as u32).await.expect("read") == new);
    common::wait_hydrated(&store, "vol-b").await;
    assert!(store.read("vol-b", 0, SIZE as u32).await.expect("read") == old);
}

/// CreateSnapshots: several volumes captured at one instant, each keeping that moment while
/// both are overwritten at once; a set naming an unknown volume captures nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_volumes_is_captured_at_one_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_local(dir.path(), CHUNK).await;
    let first = common::volume_with_pattern(&store, "vol-a", SIZE, 1).await;
    let second = common::volume_with_pattern(&store, "vol-b", SIZE, 2).await;
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        (list.iter())
            .map(|(s, v)| (s.to_string(), v.to_string()))
            .collect()
    };
    let refused = store
        .create_snapshots(&pairs(&[("snap-x", "vol-a"), ("snap-y", "vol-none")]))
        .await;
    assert!(refused.is_err());
    assert!(store.snapshot_status("snap-x").is_none());
    store
        .create_snapshots(&pairs(&[("snap-a", "vol-a"), ("snap-b", "vol-b")]))
        .await
        .expect("snapshots");
    for volume in ["vol-a", "vol-b"] {
        store
            .write(volume, 0, common::pattern(3, SIZE as usize), false)
            .await
            .expect("overwrite");
    }
    for (snapshot, restored, content) in [("snap-a", "vol-c", first), ("snap-b", "vol-d", second)] {
        assert_eq!(
            common::wait_snapshot(&store, snapshot).await,
            SnapshotState::Completed
        );
        store
            .create_volume(restored, SIZE, Some(snapshot), IoLimits::UNLIMITED)
            .await
            .expect("restore");
        common::wait_hydrated(&store, restored).await;
        assert!(store.read(restored, 0, SIZE as u32).await.expect("read") == content);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_snapshots_gc_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_local(dir.path(), CHUNK).await;
    common::volume_with_pattern(&store, "vol-a", SIZE, 1).await;
    common::completed_snapshot(&store, "snap-1", "vol-a").await;
    let first_chunks = chunk_files(dir.path());
    assert_eq!(first_chunks as u64, SIZE / CHUNK);
    // Two chunks change: only those are uploaded.
    store
        .write("vol-a", 4096, vec![7; 4096], false)
        .await
        .expect("write");
    store
        .write("vol-a", 5 * CHUNK, vec![8; 100 * 512], false)
        .await
        .expect("write");
    common::completed_snapshot(&store, "snap-2", "vol-a").await;
    assert_eq!(chunk_files(dir.path()), first_chunks + 2);
    let changed = store
        .list_changed_blocks(Some("snap-1"), "snap-2")
        .expect("changed");
    assert_eq!(
        changed.iter().map(|c| c.index).collect::<Vec<_>>(),
        vec![0, 5]
    );
    let s1 = store.snapshot_status("snap-1").expect("status");
    let s2 = store.snapshot_status("snap-2").expect("status");
    assert!(s2.stored_bytes < s1.stored_bytes / 2, "{s1:?} {s2:?}");
    assert_eq!(s2.parent.as_deref(), Some("snap-1"));
    store.copy_snapshot("snap-2", "snap-3").await.expect("copy");
    assert_eq!(chunk_files(dir.path()), first_chunks + 2);

    // Everything survives a restart.
    store.flush("vol-a").await.expect("flush");
    let expected = store.read("vol-a", 0, SIZE as u32).await.expect("read");
    drop(store);
    // A damaged manifest is skipped, not fatal.
    std::fs::write(
        dir.path().join("objects/snapshots/snap-bad.json"),
        b"{not json",
    )
    .expect("bad manifest");
    let store = common::open_local(dir.path(), CHUNK).await;
    assert_eq!(store.list_volumes(), vec!["vol-a".to_string()]);
    assert!(store.read("vol-a", 0, SIZE as u32).await.expect("read") == expected);
    assert_eq!(store.list_snapshots().len(), 3);

    // Chunks go away when nothing refers to them any more.
    store.delete_snapshot("snap-1").await.expect("delete");
    assert_eq!(
        chunk_files(dir.path()),
        first_chunks,
        "the two replaced chunks of snap-1 are gone"
    );
    store.delete_snapshot("snap-2").await.expect("delete");
    store.delete_snapshot("snap-3").await.expect("delete");
    // The volume still refers to snap-2's chunks as its incremental base.
    assert_eq!(chunk_files(dir.path()), first_chunks);
    store.delete_volume("vol-a").await.expect("delete volume");
    assert!(!dir.path().join("data/volumes/vol-a").exists());
    store.collect_garbage().await.expect("gc");
    assert_eq!(chunk_files(dir.path()), 0);
    assert!(matches!(
        store.delete_snapshot("snap-1").await,
        Err(blockstore::Error::SnapshotNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebs_direct_api_builds_usable_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_local(dir.path(), CHUNK).await;
    let block = |seed: u8| common::pattern(seed, EBS_BLOCK_SIZE as usize);
    store
        .start_snapshot("snap-d1", 1, None, HOUR)
        .await
        .expect("start");
    store.put_block("snap-d1", 0, block(1)).await.expect("put");
    store
        .put_block("snap-d1", 2047, block(2))
        .await
        .expect("put");
    assert!(store.put_block("snap-d1", 2048, block(3)).await.is_err());
    assert!(store.put_block("snap-d1", 1, vec![0; 10]).await.is_err());
    assert!(store.complete_snapshot("snap-d1", 3).await.is_err());
    store
        .complete_snapshot("snap-d1", 2)
        .await
        .expect("complete");
    assert!(store.put_block("snap-d1", 3, block(4)).await.is_err());
    let blocks = store.list_blocks("snap-d1").expect("list");
    assert_eq!(
        blocks.iter().map(|b| b.index).collect::<Vec<_>>(),
        vec![0, 2047]
    );
    assert!(store.get_block("snap-d1", 2047).await.expect("get") == block(2));
    assert!(store.get_block("snap-d1", 5).await.expect("get") == vec![0; EBS_BLOCK_SIZE as usize]);

    store
        .start_snapshot("snap-d2", 1, Some("snap-d1"), HOUR)
        .await
        .expect("start child");
    store.put_block("snap-d2", 0, block(9)).await.expect("put");
    store.put_block("snap-d2", 7, block(10)).await.expect("put");
    store
        .complete_snapshot("snap-d2", 2)
        .await
        .expect("complete");
    let changed = store
        .list_changed_blocks(Some("snap-d1"), "snap-d2")
        .expect("changed");
    assert_eq!(
        changed.iter().map(|c| c.index).collect::<Vec<_>>(),
        vec![0, 7]
    );
    assert!(changed[1].first.is_none() && changed[1].second.is_some());

    store
        .create_volume("vol-d", 1 << 30, Some("snap-d2"), IoLimits::UNLIMITED)
        .await
        .expect("volume");
    assert!(
        store
            .read("vol-d", 0, EBS_BLOCK_SIZE as u32)
            .await
            .expect("read")
            == block(9)
    );
    assert!(
        store
            .read("vol-d", 7 * EBS_BLOCK_SIZE, EBS_BLOCK_SIZE as u32)
            .await
            .expect("read")
            == block(10)
    );
    assert!(
        store
            .read("vol-d", 2047 * EBS_BLOCK_SIZE, EBS_BLOCK_SIZE as u32)
            .await
            .expect("read")
            == block(2)
    );
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_direct_snapshot_fails_after_its_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_local(dir.path(), CHUNK).await;
    let timeout = Duration::from_secs(10 * 60);
    let before_idle = Instant::now();
    store
        .start_snapshot("snap-idle", 1, None, timeout)
        .await
        .expect("start");
    let idle_started = Instant::now();
    store
        .start_snapshot("snap-busy", 1, None, timeout)
        .await
        .expect("start");
    let before_block = Instant::now();
    store
        .put_block("snap-busy", 0, vec![1; EBS_BLOCK_SIZE as usize])
        .await
        .expect("put");
    // Neither has been idle longer than its timeout yet.
    let not_yet = store.expire_idle_snapshots(before_idle + timeout).await;
    assert!(not_yet.is_empty());
    // The block written restarted the busy one's clock: only the idle one fails.
    let expired = store
        .expire_idle_snapshots(idle_started + timeout + Duration::from_nanos(1))
        .await;
    assert_eq!(expired, vec!["snap-idle".to_string()]);
    let status = store.snapshot_status("snap-idle").expect("status");
    assert_eq!(status.state, SnapshotState::Error);
    assert!(status.error.expect("message").contains("10 minutes"));
    assert!(store
        .put_block("snap-idle", 1, vec![2; EBS_BLOCK_SIZE as usize])
        .await
        .is_err());
    assert!(store.complete_snapshot("snap-idle", 0).await.is_err());
    store
        .delete_snapshot("snap-idle")
        .await
        .expect("delete failed snapshot");
    // The other one still completes.
    store
        .complete_snapshot("snap-busy", 1)
        .await
        .expect("complete");
    let much_later = before_block + 2 * timeout;
    assert!(store.expire_idle_snapshots(much_later).await.is_empty());
    assert_eq!(
        store.snapshot_status("snap-busy").expect("status").state,
        SnapshotState::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_image_import_becomes_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_local(dir.path(), CHUNK).await;
    let image = dir.path().join("disk.raw");
    let mut content = common::pattern(5, 3 * CHUNK as usize + 1000);
    content[CHUNK as usize..2 * CHUNK as usize].fill(0);
    std::fs::write(&image, &content).expect("image");
    let size = store
        .import_raw_image("snap-img", &image)
        .await
        .expect("import");
    assert_eq!(size, content.len().div_ceil(512) as u64 * 512);
    assert_eq!(
        store.snapshot_status("snap-img").expect("status").state,
        SnapshotState::Completed
    );
    assert_eq!(
        store.list_blocks("snap-img").expect("blocks").len(),
        3,
        "the zero chunk is not stored"
    );
    store
        .create_volume("vol-img", 4 * CHUNK, Some("snap-img"), IoLimits::UNLIMITED)
        .await
        .expect("volume");
    let data = store
        .read("vol-img", 0, content.len() as u32)
        .await
        .expect("read");
    assert!(data == content);
}

/// Starts moto's S3 server on a free port with a bucket; `None` when moto is not installed.
async fn moto() -> Option<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = tokio::process::Command::new("moto_server")
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            // moto accepts unsigned bucket creation.
            let created = tokio::process::Command::new("curl")
                .args(["-sf", "-X", "PUT", &format!("{endpoint}/nimbus-test")])
                .status()
                .await
                .ok()?;
            return created.success().then_some((child, endpoint));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_store_against_moto() {
    let Some((_moto, endpoint)) = moto().await else {
        panic!("moto_server is required: pip install 'moto[server]'");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ObjectStoreSpec::S3(nimbus_core_config(&endpoint));
    let options = BlockStoreOptions { chunk_size: CHUNK };
    let store = BlockStore::open_with(&dir.path().join("data"), spec.clone(), options.clone())
        .await
        .expect("open");
    let content = common::volume_with_pattern(&store, "vol-s3", SIZE, 3).await;
    common::completed_snapshot(&store, "snap-s3", "vol-s3").await;
    drop(store);
    // A second store on another data dir sees the snapshot through the bucket.
    let other = tempfile::tempdir().expect("tempdir");
    let store = BlockStore::open_with(&other.path().join("data"), spec, options)
        .await
        .expect("reopen");
    store
        .create_volume("vol-copy", SIZE, Some("snap-s3"), IoLimits::UNLIMITED)
        .await
        .expect("restore");
    assert!(store.read("vol-copy", 0, SIZE as u32).await.expect("read") == content);
    store
        .delete_volume("vol-copy")
        .await
        .expect("delete volume");
    store
        .delete_snapshot("snap-s3")
        .await
        .expect("delete snapshot");
    assert_eq!(
        store.collect_garbage().await.expect("gc"),
        0,
        "delete_snapshot already collected"
    );
}

fn nimbus_core_config(endpoint: &str) -> nimbus_core::ObjectStoreConfig {
    nimbus_core::ObjectStoreConfig {
        endpoint: endpoint.to_string(),
        bucket: "nimbus-test".into(),
        region: "us-east-1".into(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        prefix: "blockstore".into(),
    }
}

/// A stop in the middle of an upload (the runtime is torn down, as by `kill -9`) after a
/// chunk already uploaded and one still waiting were overwritten:
/// after the restart the snapshot resumes and keeps its moment.
#[test]
fn a_snapshot_cut_short_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = 256 << 20;
    let old = common::pattern(1, size as usize);
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let first = runtime();
    first.block_on(async {
        let store = common::open_local(dir.path(), CHUNK).await;
        store
            .create_volume("vol-a", size, None, IoLimits::UNLIMITED)
            .await
            .expect("create");
        store
            .write("vol-a", 0, old.clone(), false)
            .await
            .expect("write");
        store.flush("vol-a").await.expect("flush");
        store
            .create_snapshot("snap-1", "vol-a")
            .await
            .expect("snapshot");
        for _ in 0..1000 {
            let status = store.snapshot_status("snap-1").expect("status");
            if status.progress_percent >= 20 || status.state != SnapshotState::Pending {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Chunks go up in order: the first is stored (and released), the last is not.
        for offset in [0, size - CHUNK] {
            store
                .write("vol-a", offset, vec![0xee; CHUNK as usize], true)
                .await
                .expect("overwrite");
        }
    });
    first.shutdown_background();
    runtime().block_on(async {
        let store = common::open_local(dir.path(), CHUNK).await;
        assert_eq!(
            common::wait_snapshot(&store, "snap-1").await,
            SnapshotState::Completed
        );
        store
            .create_volume("vol-b", size, Some("snap-1"), IoLimits::UNLIMITED)
            .await
            .expect("restore");
        let restored = store.read("vol-b", 0, size as u32).await.expect("read");
        let differing: Vec<usize> = (0..(size / CHUNK) as usize)
            .filter(|c| {
                let range = c * CHUNK as usize..(c + 1) * CHUNK as usize;
                restored[range.clone()] != old[range]
            })
            .collect();
        assert!(differing.is_empty(), "chunks differ: {differing:?}");
        let pending = dir.path().join("data/volumes/vol-a/pending");
        assert_eq!(std::fs::read_dir(pending).expect("pending dir").count(), 0);
    });
}
