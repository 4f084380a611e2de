//! The engine against an in-memory model: random writes, zeroes, snapshots, volumes from
//! snapshots, deletes, growth and restarts, checked byte for byte.

mod common;

use std::collections::BTreeMap;

use blockstore::{BlockStore, IoLimits, SnapshotState};
use proptest::prelude::*;

const CHUNK: u64 = 16 << 10;
const VOLUME: u64 = 256 << 10;

#[derive(Clone, Debug)]
enum Op {
    Write {
        volume: usize,
        offset: u64,
        length: u64,
        seed: u8,
        fua: bool,
    },
    Zero {
        volume: usize,
        offset: u64,
        length: u64,
    },
    Flush {
        volume: usize,
    },
    Snapshot {
        volume: usize,
    },
    FromSnapshot {
        snapshot: usize,
        extra: u64,
    },
    DeleteVolume {
        volume: usize,
    },
    DeleteSnapshot {
        snapshot: usize,
    },
    Grow {
        volume: usize,
        extra: u64,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let range = (0..VOLUME / 512)
        .prop_flat_map(|start| (Just(start * 512), 1..=((VOLUME / 512 - start).min(160))))
        .prop_map(|(o, l)| (o, l * 512));
    prop_oneof![
        6 => (any::<usize>(), range.clone(), any::<u8>(), any::<bool>())
            .prop_map(|(volume, (offset, length), seed, fua)| Op::Write { volume, offset, length, seed, fua }),
        2 => (any::<usize>(), range).prop_map(|(volume, (offset, length))| Op::Zero { volume, offset, length }),
        1 => any::<usize>().prop_map(|volume| Op::Flush { volume }),
        3 => any::<usize>().prop_map(|volume| Op::Snapshot { volume }),
        2 => (any::<usize>(), 0..3u64).prop_map(|(snapshot, extra)| Op::FromSnapshot { snapshot, extra: extra * 8192 }),
        1 => any::<usize>().prop_map(|volume| Op::DeleteVolume { volume }),
        1 => any::<usize>().prop_map(|snapshot| Op::DeleteSnapshot { snapshot }),
        1 => (any::<usize>(), 1..4u64).prop_map(|(volume, extra)| Op::Grow { volume, extra: extra * 4096 }),
        1 => Just(Op::Restart),
    ]
}

fn pick<T: Clone>(keys: &BTreeMap<String, T>, index: usize) -> Option<String> {
    if keys.is_empty() {
        None
    } else {
        keys.keys().nth(index % keys.len()).cloned()
    }
}

async fn check_volumes(store: &BlockStore, volumes: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        store.list_volumes(),
        volumes.keys().cloned().collect::<Vec<_>>()
    );
    for (id, model) in volumes {
        let data = store
            .read(id, 0, model.len() as u32)
            .await
            .expect("read volume");
        assert!(data == *model, "volume {id} differs from the model");
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open_local(dir.path(), CHUNK).await;
    let mut volumes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut snapshots: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut next = 0;
    let mut new_id = |prefix: &str| {
        next += 1;
        format!("{prefix}-{next}")
    };
    let first = new_id("vol");
    store
        .create_volume(&first, VOLUME, None, IoLimits::UNLIMITED)
        .await
        .expect("create");
    volumes.insert(first, vec![0; VOLUME as usize]);
    for op in ops {
        match op {
            Op::Write {
                volume,
                offset,
                length,
                seed,
                fua,
            } => {
                let Some(id) = pick(&volumes, volume) else {
                    continue;
                };
                let data = common::pattern(seed, length as usize);
                store
                    .write(&id, offset, data.clone(), fua)
                    .await
                    .expect("write");
                volumes.get_mut(&id).expect("model")[offset as usize..(offset + length) as usize]
                    .copy_from_slice(&data);
            }
            Op::Zero {
                volume,
                offset,
                length,
            } => {
                let Some(id) = pick(&volumes, volume) else {
                    continue;
                };
                store
                    .write_zeroes(&id, offset, length, false)
                    .await
                    .expect("zero");
                volumes.get_mut(&id).expect("model")[offset as usize..(offset + length) as usize]
                    .fill(0);
            }
            Op::Flush { volume } => {
                let Some(id) = pick(&volumes, volume) else {
                    continue;
                };
                store.flush(&id).await.expect("flush");
            }
            Op::Snapshot { volume } => {
                let Some(id) = pick(&volumes, volume) else {
                    continue;
                };
                let snap = new_id("snap");
                store.create_snapshot(&snap, &id).await.expect("snapshot");
                snapshots.insert(snap, volumes[&id].clone());
            }
            Op::FromSnapshot { snapshot, extra } => {
                let Some(snap) = pick(&snapshots, snapshot) else {
                    continue;
                };
                assert_eq!(
                    common::wait_snapshot(&store, &snap).await,
                    SnapshotState::Completed
                );
                let mut content = snapshots[&snap].clone();
                content.resize(content.len() + extra as usize, 0);
                let id = new_id("vol");
                store
                    .create_volume(&id, content.len() as u64, Some(&snap), IoLimits::UNLIMITED)
                    .await
                    .expect("from snapshot");
                volumes.insert(id, content);
            }
            Op::DeleteVolume { volume } => {
                let Some(id) = pick(&volumes, volume) else {
                    continue;
                };
                store.delete_volume(&id).await.expect("delete volume");
                volumes.remove(&id);
            }
            Op::DeleteSnapshot { snapshot } => {
                let Some(snap) = pick(&snapshots, snapshot) else {
                    continue;
                };
                common::wait_snapshot(&store, &snap).await;
                store.delete_snapshot(&snap).await.expect("delete snapshot");
                snapshots.remove(&snap);
            }
            Op::Grow { volume, extra } => {
                let Some(id) = pick(&volumes, volume) else {
                    continue;
                };
                let model = volumes.get_mut(&id).expect("model");
                model.resize(model.len() + extra as usize, 0);
                store
                    .resize_volume(&id, model.len() as u64)
                    .await
                    .expect("grow");
            }
            Op::Restart => {
                for snap in snapshots.keys() {
                    common::wait_snapshot(&store, snap).await;
                }
                for id in volumes.keys() {
                    common::wait_hydrated(&store, id).await;
                    store.flush(id).await.expect("flush before restart");
                }
                drop(store);
                store = common::open_local(dir.path(), CHUNK).await;
            }
        }
    }
    check_volumes(&store, &volumes).await;
    for (snap, model) in &snapshots {
        assert_eq!(
            common::wait_snapshot(&store, snap).await,
            SnapshotState::Completed
        );
        let id = new_id("check");
        store
            .create_volume(&id, model.len() as u64, Some(snap), IoLimits::UNLIMITED)
            .await
            .expect("restore");
        let data = store
            .read(&id, 0, model.len() as u32)
            .await
            .expect("read restored");
        assert!(data == *model, "snapshot {snap} differs from the model");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(run(ops));
    }
}
