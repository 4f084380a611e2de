//! The reconciler drives the block store (and later compute) towards the state recorded in
//! the store: volumes `creating` get their data, `deleting` ones lose it, modifications are
//! applied, pending snapshots are followed to completion. It runs after every change and on a
//! short tick, so a restart finishes whatever was half done.

use std::sync::Arc;
use std::time::Duration;

use crate::snapshots::{engine_error, Snapshot, SnapshotSource, SnapshotState};
use crate::volumes::{ModificationState, Volume, VolumeState};
use crate::{Control, Result};

const TICK: Duration = Duration::from_millis(500);

impl Control {
    /// Asks the reconciler to run soon.
    pub fn wake_reconciler(&self) {
        self.reconcile_signal.notify_one();
    }

    /// Runs forever; spawn it once per server.
    pub async fn run_reconciler(self: Arc<Self>) {
        loop {
            if let Err(error) = self.reconcile_once().await {
                tracing::warn!(%error, "reconcile pass failed; retrying");
            }
            if let Err(error) = self.reconcile_images() {
                tracing::warn!(%error, "image reconcile failed; retrying");
            }
            if let Err(error) = self.reconcile_instances().await {
                tracing::warn!(%error, "instance reconcile failed; retrying");
            }
            tokio::select! {
                _ = self.reconcile_signal.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// One pass over everything that is not in its resting state.
    pub async fn reconcile_once(&self) -> Result<()> {
        // Open EBS direct snapshots idle past their timeout fail in the engine; the pass
        // over pending snapshots below records that.
        self.engine()
            .expire_idle_snapshots(std::time::Instant::now())
            .await;
        let (volumes, snapshots): (Vec<Volume>, Vec<Snapshot>) = {
            let state = self.read();
            (
                state
                    .volumes
                    .values()
                    .filter(|v| {
                        matches!(v.state, VolumeState::Creating | VolumeState::Deleting)
                            || v.modification
                                .as_ref()
                                .is_some_and(|m| m.state == ModificationState::Modifying)
                    })
                    .cloned()
                    .collect(),
                state
                    .snapshots
                    .values()
                    .filter(|s| s.state == SnapshotState::Pending)
                    .cloned()
                    .collect(),
            )
        };
        for volume in volumes {
            self.reconcile_volume(volume).await?;
        }
        for snapshot in snapshots {
            self.reconcile_snapshot(snapshot).await?;
        }
        Ok(())
    }

    async fn reconcile_volume(&self, volume: Volume) -> Result<()> {
        let engine = self.engine();
        let id = volume.volume_id.as_str();
        match volume.state {
            VolumeState::Creating => {
                let outcome = if engine.volume_info(id).is_some() {
                    Ok(())
                } else {
                    engine
                        .create_volume(
                            id,
                            volume.size_bytes(),
                            volume.snapshot_id.as_deref(),
                            limits(&volume.performance),
                        )
                        .await
                };
                self.update::<Volume>(id, |v| match &outcome {
                    Ok(()) if v.attachments.is_empty() => v.state = VolumeState::Available,
                    Ok(()) => v.state = VolumeState::InUse,
                    Err(error) => {
                        tracing::error!(volume = v.volume_id, %error, "volume creation failed");
                        v.state = VolumeState::Error;
                    }
                })
            }
            VolumeState::Deleting => {
                if engine.volume_info(id).is_some() {
                    engine.delete_volume(id).await.map_err(engine_error)?;
                }
                self.mutate(|txn| {
                    txn.delete::<Volume>(id);
                    Ok(())
                })
            }
            _ => {
                let Some(modification) = volume.modification.clone() else {
                    return Ok(());
                };
                let target_bytes = modification.target_size_gib * crate::volumes::GIB;
                if target_bytes > volume.size_bytes() {
                    engine
                        .resize_volume(id, target_bytes)
                        .await
                        .map_err(engine_error)?;
                    self.grow_attached_disks(&volume, target_bytes).await;
                }
                engine
                    .set_limits(id, limits(&modification.target_performance))
                    .map_err(engine_error)?;
                self.update::<Volume>(id, |v| {
                    v.size_gib = modification.target_size_gib;
                    v.volume_type = modification.target_type;
                    v.performance = modification.target_performance;
                    if let Some(m) = &mut v.modification {
                        m.state = ModificationState::Completed;
                        m.end_time = Some(nimbus_core::now_millis());
                    }
                })
            }
        }
    }

    async fn reconcile_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let engine = self.engine();
        let id = snapshot.snapshot_id.as_str();
        if let SnapshotSource::Copy { source_snapshot_id } = &snapshot.source {
            if engine.snapshot_status(id).is_none() {
                if let Err(error) = engine.copy_snapshot(source_snapshot_id, id).await {
                    return self.update::<Snapshot>(id, |s| {
                        s.state = SnapshotState::Error;
                        s.state_message = Some(error.to_string());
                    });
                }
            }
        }
        let Some(status) = engine.snapshot_status(id) else {
            // The engine lost a snapshot it never finished (it was pending at a crash).
            return self.update::<Snapshot>(id, |s| {
                s.state = SnapshotState::Error;
                s.state_message = Some("The snapshot data was lost before it completed.".into());
            });
        };
        let pending = status.state == blockstore::SnapshotState::Pending;
        if pending && status.progress_percent == snapshot.progress {
            return Ok(());
        }
        self.update::<Snapshot>(id, |s| {
            s.progress = status.progress_percent;
            match status.state {
                blockstore::SnapshotState::Pending => {}
                blockstore::SnapshotState::Completed => {
                    s.state = SnapshotState::Completed;
                    s.progress = 100;
                }
                blockstore::SnapshotState::Error => {
                    s.state = SnapshotState::Error;
                    s.state_message = status.error.clone();
                }
            }
        })
    }

    /// Applies `change` to one stored resource, if it still exists.
    pub fn update<T: crate::Resource>(&self, id: &str, change: impl FnOnce(&mut T)) -> Result<()> {
        self.mutate(|txn| {
            let Some(mut item) = txn.state().get::<T>(id).cloned() else {
                return Ok(());
            };
            change(&mut item);
            txn.put(item)
        })
    }
}

pub fn limits(performance: &crate::volume_types::Performance) -> blockstore::IoLimits {
    blockstore::IoLimits {
        iops: Some(performance.iops),
        throughput_bytes_per_sec: Some(performance.throughput_mib * 1024 * 1024),
    }
}
