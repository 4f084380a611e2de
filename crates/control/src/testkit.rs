//! A control plane on the in-memory drivers, for unit tests of the rules and the reconciler.

use std::sync::Arc;

use compute::fake::FakeHypervisor;

use crate::fake_blocks::FakeBlocks;
use crate::images::BootFiles;
use crate::instances::{Instance, RunInstancesRequest};
use crate::kinds::Tables;
use crate::volumes::CreateVolumeRequest;
use crate::{Control, Drivers};
use network::FakeNetwork;
use nimbus_core::Limits;

/// How many reconcile rounds may pass before the state must have stopped changing.
const MAX_ROUNDS: usize = 50;

pub struct Harness {
    pub control: Arc<Control>,
    pub hypervisor: Arc<FakeHypervisor>,
    pub blocks: Arc<FakeBlocks>,
    pub network: Arc<FakeNetwork>,
    pub image_id: String,
    dir: Arc<tempfile::TempDir>,
}

fn open_control(dir: &tempfile::TempDir, drivers: Drivers, limits: Limits) -> Arc<Control> {
    let store = Arc::new(store::SqliteStore::open(&dir.path().join("state.db")).expect("store"));
    let config = nimbus_core::Config {
        data_dir: dir.path().to_owned(),
        limits,
        ..nimbus_core::Config::default()
    };
    Arc::new(Control::open(config, store, drivers).expect("control"))
}

impl Harness {
    /// A control plane on fakes with one bootable image registered.
    pub async fn new() -> Harness {
        Harness::with_limits(Limits::default()).await
    }

    /// The same, with the account's limits of a config.
    pub async fn with_limits(limits: Limits) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let hypervisor = Arc::new(FakeHypervisor::default());
        let blocks = Arc::new(FakeBlocks::default());
        let network = Arc::new(FakeNetwork::default());
        let drivers = Drivers {
            blocks: blocks.clone(),
            hypervisor: hypervisor.clone(),
            network: network.clone(),
        };
        let control = open_control(&dir, drivers, limits);
        let root_fs = dir.path().join("root.img");
        std::fs::write(&root_fs, vec![1u8; 4096]).expect("root fs");
        let boot = BootFiles {
            kernel: "/nonexistent/vmlinuz".into(),
            initrd: "/nonexistent/initrd".into(),
            cmdline: String::new(),
        };
        let image = control
            .import_image("test-image", "for tests", &root_fs, boot)
            .await
            .expect("image");
        Harness {
            control,
            hypervisor,
            blocks,
            network,
            image_id: image.image_id,
            dir: Arc::new(dir),
        }
    }

    /// A second control plane on the same store and drivers, as after a restart of nimbus
    /// (the VMs and block data survive it).
    pub fn reopen(&self) -> Harness {
        let drivers = Drivers {
            blocks: self.blocks.clone(),
            hypervisor: self.hypervisor.clone(),
            network: self.network.clone(),
        };
        Harness {
            control: open_control(&self.dir, drivers, self.control.config().limits.clone()),
            hypervisor: self.hypervisor.clone(),
            blocks: self.blocks.clone(),
            network: self.network.clone(),
            image_id: self.image_id.clone(),
            dir: self.dir.clone(),
        }
    }

    /// One reconcile round: volumes, snapshots and images, then one step per instance,
    /// awaited (the storage reconciler's pass).
    pub async fn round(&self) {
        self.control.reconcile_storage().await;
        self.control.reconcile_images().expect("images");
        for step in self.control.start_instance_steps() {
            step.await.expect("instance step panicked");
        }
    }

    /// Reconciles until nothing changes any more.
    pub async fn settle(&self) {
        let mut last = self.fingerprint();
        let mut quiet_rounds = 0;
        for _ in 0..MAX_ROUNDS {
            self.round().await;
            let now = self.fingerprint();
            quiet_rounds = if now == last { quiet_rounds + 1 } else { 0 };
            if quiet_rounds == 2 {
                return;
            }
            last = now;
        }
        panic!("the reconciler did not settle in {MAX_ROUNDS} rounds");
    }

    fn fingerprint(&self) -> String {
        let state = self.control.read();
        serde_json::json!([
            state.instances(),
            state.volumes(),
            state.snapshots(),
            state.images()
        ])
        .to_string()
    }

    pub fn run_instance(&self) -> Instance {
        let request = RunInstancesRequest {
            image_id: self.image_id.clone(),
            min_count: 1,
            max_count: 1,
            ..RunInstancesRequest::default()
        };
        let mut launched = self.control.run_instances(request).expect("run");
        launched.remove(0)
    }

    pub fn instance(&self, id: &str) -> Instance {
        self.control.read().instances()[id].clone()
    }

    /// CreateSnapshot of `volume_id`.
    pub async fn snapshot(&self, volume_id: &str) -> crate::Result<crate::snapshots::Snapshot> {
        self.control
            .create_snapshot(volume_id, String::new(), Default::default(), false)
            .await
    }

    /// CopySnapshot of `snapshot_id` from `region`.
    pub async fn copy(
        &self,
        snapshot_id: &str,
        region: &str,
    ) -> crate::Result<crate::snapshots::Snapshot> {
        self.control
            .copy_snapshot(snapshot_id, region, None, Default::default(), false)
            .await
    }

    pub fn create_volume(&self) -> String {
        let request = CreateVolumeRequest {
            size_gib: Some(1),
            availability_zone: Some("us-east-1a".into()),
            ..CreateVolumeRequest::default()
        };
        self.control
            .create_volume(request)
            .expect("volume")
            .volume_id
    }
}
