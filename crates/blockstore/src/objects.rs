//! Snapshot data in an object store: content-addressed zstd chunks and JSON manifests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use nimbus_core::ObjectStoreConfig;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::private;

/// Where snapshot chunks and manifests are kept.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectStoreSpec {
    /// A local directory (created if missing).
    Local(PathBuf),
    /// Any S3-compatible bucket.
    S3(ObjectStoreConfig),
}

/// Lifecycle of a snapshot, as EC2 reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Error => "error",
        }
    }
}

/// A snapshot as stored: which chunk content (blake3 hex) sits at each chunk index.
/// Absent indexes are zeros, so sparse volumes cost nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub id: String,
    pub volume_id: Option<String>,
    pub parent: Option<String>,
    pub size: u64,
    pub chunk_size: u64,
    pub chunks: BTreeMap<u64, String>,
    pub state: SnapshotState,
    pub created_millis: i64,
    /// Compressed bytes this snapshot added to the store (chunks no earlier snapshot had).
    pub stored_bytes: u64,
    pub error: Option<String>,
}

impl Manifest {
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }
}

pub(crate) struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

const ZSTD_LEVEL: i32 = 1;

impl Objects {
    pub fn new(spec: &ObjectStoreSpec) -> Result<Self> {
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match spec {
            ObjectStoreSpec::Local(dir) => {
                private::create_dir(dir)?;
                (
                    Arc::new(LocalFileSystem::new_with_prefix(dir)?),
                    String::new(),
                )
            }
            ObjectStoreSpec::S3(c) => {
                let s3 = AmazonS3Builder::new()
                    .with_endpoint(&c.endpoint)
                    .with_bucket_name(&c.bucket)
                    .with_region(&c.region)
                    .with_access_key_id(&c.access_key_id)
                    .with_secret_access_key(&c.secret_access_key)
                    .with_allow_http(true)
                    .with_virtual_hosted_style_request(false)
                    .build()?;
                (Arc::new(s3), c.prefix.clone())
            }
        };
        Ok(Objects {
            store,
            prefix: ObjectPath::from(prefix),
        })
    }

    fn path(&self, kind: &str, name: &str) -> ObjectPath {
        self.prefix.child(kind).child(name)
    }

    /// Stores one chunk unless identical content is already there; returns its hash and the
    /// compressed bytes newly stored (0 when deduplicated).
    pub async fn put_chunk(&self, data: Arc<Vec<u8>>) -> Result<(String, u64)> {
        let hash = blake3::hash(&data).to_hex().to_string();
        let path = self.path("chunks", &hash);
        match self.store.head(&path).await {
            Ok(_) => return Ok((hash, 0)),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let compressed =
            tokio::task::spawn_blocking(move || zstd::bulk::compress(&data, ZSTD_LEVEL)).await??;
        let stored = compressed.len() as u64;
        self.store.put(&path, PutPayload::from(compressed)).await?;
        Ok((hash, stored))
    }

    /// Fetches a chunk and checks it against its hash.
    pub async fn get_chunk(&self, hash: &str, chunk_size: usize) -> Result<Vec<u8>> {
        let compressed = self
            .store
            .get(&self.path("chunks", hash))
            .await?
            .bytes()
            .await?;
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || {
            let data = zstd::bulk::decompress(&compressed, chunk_size)
                .map_err(|_| Error::CorruptChunk(hash.clone()))?;
            if blake3::hash(&data).to_hex().as_str() != hash {
                return Err(Error::CorruptChunk(hash));
            }
            Ok(data)
        })
        .await?
    }

    pub async fn list_chunks(&self) -> Result<Vec<String>> {
        self.list_names("chunks").await
    }

    pub async fn delete_chunk(&self, hash: &str) -> Result<()> {
        ignore_missing(self.store.delete(&self.path("chunks", hash)).await)
    }

    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<()> {
        let body = serde_json::to_vec(manifest)
            .map_err(|e| Error::CorruptMetadata(manifest.id.clone(), e.to_string()))?;
        self.store
            .put(
                &self.path("snapshots", &format!("{}.json", manifest.id)),
                PutPayload::from(body),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_manifest(&self, id: &str) -> Result<()> {
        ignore_missing(
            self.store
                .delete(&self.path("snapshots", &format!("{id}.json")))
                .await,
        )
    }

    pub async fn load_manifests(&self) -> Result<Vec<Manifest>> {
        let mut manifests = Vec::new();
        for name in self.list_names("snapshots").await? {
            let body = self
                .store
                .get(&self.path("snapshots", &name))
                .await?
                .bytes()
                .await?;
            // One damaged manifest must not keep the store from opening.
            match serde_json::from_slice::<Manifest>(&body) {
                Ok(m) if valid_chunk_size(m.chunk_size) => manifests.push(m),
                _ => tracing::warn!(manifest = %name, "skipping an unreadable snapshot manifest"),
            }
        }
        Ok(manifests)
    }

    async fn list_names(&self, kind: &str) -> Result<Vec<String>> {
        let dir = self.prefix.child(kind);
        let metas: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect())
    }
}

/// Chunk sizes the store accepts: a power of two from 4 KiB to 4 MiB.
pub(crate) fn valid_chunk_size(size: u64) -> bool {
    size.is_power_of_two() && (4096..=4 << 20).contains(&size)
}

fn ignore_missing(result: object_store::Result<()>) -> Result<()> {
    match result {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
