//! The reconciler drives the drivers toward the state recorded in the store: volumes
//! `creating` get their data, `deleting` ones lose it, modifications are applied, pending
//! snapshots are followed to completion, and instances' VMs follow their records (see
//! `instance_reconciler.rs`). It runs after every change and on a short tick, so a restart
//! finishes whatever was half done. A resource whose step fails is retried on the next pass
//! and never stops the pass for the others.
//!
//! The records hold what the user wants; the drivers hold what is. A step's outcome is
//! written only if the record still asks for what the step did, so a slow step that
//! finishes late never overwrites a newer request.

use std::sync::Arc;
use std::time::Duration;

use crate::kinds::Tables;
use crate::snapshots::{engine_error, Snapshot, SnapshotSource, SnapshotState};
use crate::volumes::{ModificationState, Volume, VolumeState};
use crate::{Control, Result};

const TICK: Duration = Duration::from_millis(500);

/// Volumes, snapshots, images and instances' VMs (`instance_reconciler.rs`): after every
/// change it is woken for, and on a short tick.
pub(crate) struct Storage(pub(crate) Arc<Control>);

#[async_trait::async_trait]
impl engine::Reconciler for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }

    async fn pass(&self) {
        self.0.reconcile_storage().await;
        if let Err(error) = self.0.reconcile_images() {
            tracing::warn!(%error, "image reconcile failed; retrying");
        }
        // Instance steps run on their own: a booting VM does not hold up this loop.
        drop(self.0.start_instance_steps());
    }

    async fn wait(&self) {
        tokio::select! {
            _ = self.0.reconcile_signal.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

impl Control {
    /// Asks the reconciler to run soon.
    pub fn wake_reconciler(&self) {
        self.reconcile_signal.notify_one();
    }

    /// One pass over every volume and snapshot that is not in its resting state.
    pub async fn reconcile_storage(&self) {
        // Open EBS direct snapshots idle past their timeout fail in the engine; the pass
        // over pending snapshots below records that.
        self.engine()
            .expire_idle_snapshots(std::time::Instant::now())
            .await;
        let (volumes, snapshots): (Vec<Volume>, Vec<Snapshot>) = {
            let state = self.read();
            (
                state
                    .volumes()
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
                    .snapshots()
                    .values()
                    .filter(|s| s.state == SnapshotState::Pending)
                    .cloned()
                    .collect(),
            )
        };
        for volume in volumes {
            let id = volume.volume_id.clone();
            if let Err(error) = self.reconcile_volume(volume).await {
                tracing::warn!(volume = id, %error, "volume step failed; will retry");
            }
        }
        for snapshot in snapshots {
            let id = snapshot.snapshot_id.clone();
            if let Err(error) = self.reconcile_snapshot(snapshot).await {
                tracing::warn!(snapshot = id, %error, "snapshot step failed; will retry");
            }
        }
    }

    async fn reconcile_volume(&self, volume: Volume) -> Result<()> {
        let engine = self.engine();
        let id = volume.volume_id.as_str();
        match volume.state {
            VolumeState::Creating => {
                let outcome = if engine.volume_exists(id) {
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
                // Meanwhile the volume may have been released for deletion (its instance was
                // terminated): then the outcome is not recorded and the next pass deletes it.
                self.update::<Volume>(id, |v| match &outcome {
                    _ if v.state != VolumeState::Creating => {}
                    Ok(()) if v.attachments.is_empty() => v.state = VolumeState::Available,
                    Ok(()) => v.state = VolumeState::InUse,
                    Err(error) => {
                        tracing::error!(volume = v.volume_id, %error, "volume creation failed");
                        v.state = VolumeState::Error;
                    }
                })
            }
            VolumeState::Deleting => {
                if engine.volume_exists(id) {
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
                    self.grow_attached_disks(id, target_bytes).await;
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
            Ok(txn.put(item)?)
        })
    }
}

pub fn limits(performance: &crate::volume_types::Performance) -> blockstore::IoLimits {
    blockstore::IoLimits {
        iops: Some(performance.iops),
        throughput_bytes_per_sec: Some(performance.throughput_mib * 1024 * 1024),
    }
}

#[cfg(test)]
mod tests {
    //! A randomized test: API calls land between and in the middle of reconcile rounds, and
    //! once the reconciler settles, every resource is what the last accepted call asked for.

    use crate::kinds::Tables;
    use proptest::prelude::*;

    use crate::instances::InstanceState;
    use crate::testkit::Harness;
    use crate::volumes::VolumeState;

    const INSTANCES: usize = 2;
    const VOLUMES: usize = 2;

    #[derive(Clone, Debug)]
    enum Call {
        Start(usize),
        Stop { instance: usize, force: bool },
        Reboot(usize),
        Terminate(usize),
        Attach { volume: usize, instance: usize },
        Detach(usize),
        DeleteVolume(usize),
    }

    #[derive(Clone, Debug)]
    enum Move {
        /// A call between reconcile rounds.
        Between(Call),
        /// A call that lands `turns` scheduler turns into a reconcile round.
        During(Call, u8),
        Round,
    }

    fn call() -> impl Strategy<Value = Call> {
        let instance = 0..INSTANCES;
        let volume = 0..VOLUMES;
        prop_oneof![
            1 => instance.clone().prop_map(Call::Start),
            2 => (instance.clone(), any::<bool>())
                .prop_map(|(instance, force)| Call::Stop { instance, force }),
            1 => instance.clone().prop_map(Call::Reboot),
            2 => instance.clone().prop_map(Call::Terminate),
            1 => (volume.clone(), instance)
                .prop_map(|(volume, instance)| Call::Attach { volume, instance }),
            1 => volume.clone().prop_map(Call::Detach),
            1 => volume.prop_map(Call::DeleteVolume),
        ]
    }

    fn moves() -> impl Strategy<Value = Vec<Move>> {
        // Calls in the middle of a round are where late steps could overwrite them: favour them.
        let one = prop_oneof![
            2 => call().prop_map(Move::Between),
            4 => (call(), 0u8..10).prop_map(|(call, turns)| Move::During(call, turns)),
            1 => Just(Move::Round),
        ];
        proptest::collection::vec(one, 1..24)
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum VolumeWish {
        Available,
        AttachedTo(usize),
        Deleted,
    }

    /// What the accepted calls asked for.
    struct Wishes {
        instances: Vec<InstanceState>,
        volumes: Vec<VolumeWish>,
    }

    struct World {
        h: Harness,
        instances: Vec<String>,
        volumes: Vec<String>,
    }

    impl World {
        fn device(volume: usize) -> String {
            format!("/dev/sd{}", char::from(b'f' + volume as u8))
        }

        /// Makes the call; if it is accepted, records what it asks for.
        fn apply(&self, call: &Call, wishes: &mut Wishes) {
            let control = &self.h.control;
            let one = |i: usize| vec![self.instances[i].clone()];
            match *call {
                Call::Start(i) => {
                    if control.start_instances(&one(i), false).is_ok() {
                        wishes.instances[i] = InstanceState::Running;
                    }
                }
                Call::Stop { instance, force } => {
                    if control.stop_instances(&one(instance), force, false).is_ok() {
                        wishes.instances[instance] = InstanceState::Stopped;
                    }
                }
                Call::Reboot(i) => {
                    let _ = control.reboot_instances(&one(i), false);
                }
                Call::Terminate(i) => {
                    if control.terminate_instances(&one(i), false).is_ok() {
                        wishes.instances[i] = InstanceState::Terminated;
                        for wish in &mut wishes.volumes {
                            if *wish == VolumeWish::AttachedTo(i) {
                                *wish = VolumeWish::Available;
                            }
                        }
                    }
                }
                Call::Attach { volume, instance } => {
                    let attached = control.attach_volume(
                        &self.volumes[volume],
                        &self.instances[instance],
                        &Self::device(volume),
                        false,
                    );
                    if attached.is_ok() {
                        wishes.volumes[volume] = VolumeWish::AttachedTo(instance);
                    }
                }
                Call::Detach(v) => {
                    if control
                        .detach_volume(&self.volumes[v], None, None, false)
                        .is_ok()
                    {
                        wishes.volumes[v] = VolumeWish::Available;
                    }
                }
                Call::DeleteVolume(v) => {
                    if control.delete_volume(&self.volumes[v], false).is_ok() {
                        wishes.volumes[v] = VolumeWish::Deleted;
                    }
                }
            }
        }

        fn check(&self, wishes: &Wishes) {
            for (i, id) in self.instances.iter().enumerate() {
                let wanted = wishes.instances[i];
                assert_eq!(self.h.instance(id).state, wanted, "instance {i}");
                assert_eq!(
                    self.h.hypervisor.is_running(id),
                    wanted == InstanceState::Running,
                    "VM of instance {i}"
                );
            }
            let state = self.h.control.read();
            for (v, id) in self.volumes.iter().enumerate() {
                let volume = state.volumes().get(id);
                match wishes.volumes[v] {
                    VolumeWish::Deleted => {
                        assert!(volume.is_none(), "volume {v} record");
                        assert_eq!(self.h.blocks.volume_size(id), None, "volume {v} data");
                    }
                    VolumeWish::Available => {
                        let volume = volume.expect("volume");
                        assert_eq!(volume.state, VolumeState::Available, "volume {v}");
                        assert!(volume.attachments.is_empty(), "volume {v}");
                    }
                    VolumeWish::AttachedTo(i) => {
                        let volume = volume.expect("volume");
                        assert_eq!(volume.state, VolumeState::InUse, "volume {v}");
                        let attachment = &volume.attachments[0];
                        assert_eq!(attachment.instance_id, self.instances[i], "volume {v}");
                        assert_eq!(
                            attachment.state,
                            crate::volumes::AttachmentState::Attached,
                            "volume {v}"
                        );
                        if wishes.instances[i] == InstanceState::Running {
                            let disks = self.h.hypervisor.disks(&self.instances[i]);
                            assert!(disks.contains(&Self::device(v)), "volume {v} plugged");
                        }
                    }
                }
            }
        }
    }

    async fn play(moves: Vec<Move>) {
        let h = Harness::new().await;
        let instances = (0..INSTANCES)
            .map(|_| h.run_instance().instance_id)
            .collect();
        let volumes = (0..VOLUMES).map(|_| h.create_volume()).collect();
        let world = World {
            h,
            instances,
            volumes,
        };
        let mut wishes = Wishes {
            instances: vec![InstanceState::Running; INSTANCES],
            volumes: vec![VolumeWish::Available; VOLUMES],
        };
        for step in moves {
            match step {
                Move::Between(call) => world.apply(&call, &mut wishes),
                Move::Round => world.h.round().await,
                Move::During(call, turns) => {
                    let late_call = async {
                        for _ in 0..turns {
                            tokio::task::yield_now().await;
                        }
                        world.apply(&call, &mut wishes);
                    };
                    tokio::join!(world.h.round(), late_call);
                }
            }
        }
        world.h.settle().await;
        world.check(&wishes);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_last_accepted_intent_wins(moves in moves()) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(play(moves));
        }
    }
}
