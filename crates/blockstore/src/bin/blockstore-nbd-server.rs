//! Serves one volume over NBD: used by the crash test and the benchmark, and handy by hand.
//!
//! `blockstore-nbd-server DATA_DIR SOCKET VOLUME_ID SIZE_BYTES [IMAGE]`: opens the store in DATA_DIR
//! (objects in DATA_DIR/objects), creates the volume if it does not exist yet (from IMAGE,
//! imported as snapshot `snap-image`, when given), serves NBD on SOCKET and prints `ready`.

use std::path::PathBuf;

use blockstore::{BlockStore, IoLimits, ObjectStoreSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data, socket, volume, size, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: blockstore-nbd-server DATA_DIR SOCKET VOLUME_ID SIZE_BYTES [IMAGE]".into(),
        );
    };
    let data = PathBuf::from(data);
    let store = BlockStore::open(&data, ObjectStoreSpec::Local(data.join("objects"))).await?;
    if store.volume_info(volume).is_none() {
        let snapshot = match rest.first() {
            Some(image) => {
                store.import_raw_image("snap-image", image.as_ref()).await?;
                Some("snap-image")
            }
            None => None,
        };
        store
            .create_volume(volume, size.parse()?, snapshot, IoLimits::UNLIMITED)
            .await?;
    }
    let listener = blockstore::bind_nbd_unix(socket.as_ref())?;
    println!("ready");
    store.serve_nbd_unix(listener).await?;
    Ok(())
}
