//! The NBD server driven by real clients: nbdinfo, nbdcopy, qemu-img, qemu-io and fio,
//! plus malformed bytes from a raw socket.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use blockstore::{BlockStore, IoLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::Command;

const VOLUME: &str = "vol-0123456789abcdef0";
const SIZE: u64 = 64 << 20;

struct Server {
    _dir: tempfile::TempDir,
    store: BlockStore,
    socket: PathBuf,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_local(dir.path(), blockstore::EBS_BLOCK_SIZE).await;
    store
        .create_volume(VOLUME, SIZE, None, IoLimits::UNLIMITED)
        .await
        .expect("create volume");
    let socket = dir.path().join("nbd.sock");
    let listener = blockstore::bind_nbd_unix(&socket).expect("bind");
    let serving = store.clone();
    tokio::spawn(async move { serving.serve_nbd_unix(listener).await });
    Server {
        _dir: dir,
        store,
        socket,
    }
}

fn uri(socket: &Path) -> String {
    format!("nbd+unix:///{VOLUME}?socket={}", socket.display())
}

/// Runs qemu-io's `commands` on the raw export at `uri`.
async fn qemu_io(uri: &str, commands: &[&str]) -> (bool, String) {
    let mut args = vec!["-f", "raw"];
    for command in commands {
        args.extend(["-c", command]);
    }
    args.push(uri);
    run("qemu-io", &args).await
}

/// Runs a client with a timeout; returns its exit success and combined output.
async fn run(program: &str, args: &[&str]) -> (bool, String) {
    let child = Command::new(program).args(args).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(180), child)
        .await
        .unwrap_or_else(|_| panic!("{program} timed out"))
        .unwrap_or_else(|e| panic!("{program} failed to start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdinfo_and_qemu_img_see_the_export() {
    let server = start().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, out) = run("nbdinfo", &[&uri(&server.socket)]).await;
    assert!(ok, "{out}");
    assert!(out.contains(&SIZE.to_string()), "{out}");
    assert!(out.contains("can_multi_conn: true"), "{out}");
    assert!(out.contains("can_fua: true"), "{out}");
    assert!(out.contains("can_trim: true"), "{out}");
    let list_uri = format!("nbd+unix://?socket={}", server.socket.display());
    let (ok, out) = run("nbdinfo", &["--list", &list_uri]).await;
    assert!(ok && out.contains(VOLUME), "{out}");
    let (ok, out) = run("qemu-img", &["info", &uri(&server.socket)]).await;
    assert!(ok && out.contains("virtual size: 64 MiB"), "{out}");
    // Growing the volume: new connections see the new size.
    server
        .store
        .resize_volume(VOLUME, SIZE * 2)
        .await
        .expect("grow");
    let (ok, out) = run("qemu-img", &["info", &uri(&server.socket)]).await;
    assert!(ok && out.contains("virtual size: 128 MiB"), "{out}");
    let missing = format!("nbd+unix:///vol-nope?socket={}", server.socket.display());
    let (ok, _) = run("nbdinfo", &[&missing]).await;
    assert!(!ok, "an unknown export must be refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_export_serves_qemu_io() {
    let server = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind tcp");
    let port = listener.local_addr().expect("address").port();
    let serving = server.store.clone();
    tokio::spawn(async move { serving.serve_nbd_tcp(listener).await });
    let tcp_uri = format!("nbd://127.0.0.1:{port}/{VOLUME}");
    let (ok, out) = qemu_io(&tcp_uri, &["write -P 0x11 4k 8k", "read -P 0x11 4k 8k"]).await;
    assert!(ok && !out.contains("fail"), "{out}");
    // The unix socket sees the same volume.
    let (ok, out) = qemu_io(&uri(&server.socket), &["read -P 0x11 4k 8k"]).await;
    assert!(ok && !out.contains("fail"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_writes_and_reads_back() {
    let server = start().await;
    let (ok, out) = qemu_io(
        &uri(&server.socket),
        &[
            "write -P 0xab 0 1M",
            "write -P 0xcd -f 1M 64k",
            "flush",
            "read -P 0xab 0 1M",
            "read -P 0xcd 1M 64k",
            "write -z 2M 128k",
            "read -P 0 2M 128k",
            "discard 0 64k",
            "read -P 0 0 64k",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(!out.contains("fail"), "{out}");
    let data = server
        .store
        .read(VOLUME, 64 << 10, 4096)
        .await
        .expect("read");
    assert!(data.iter().all(|b| *b == 0xab));
    let data = server
        .store
        .read(VOLUME, 1 << 20, 4096)
        .await
        .expect("read");
    assert!(data.iter().all(|b| *b == 0xcd));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdcopy_round_trips_an_image() {
    let server = start().await;
    let image = server._dir.path().join("in.raw");
    let back = server._dir.path().join("out.raw");
    let content: Vec<u8> = (0..SIZE as usize).map(|i| (i * 7 / 4096) as u8).collect();
    std::fs::write(&image, &content).expect("write image");
    let (ok, out) = run(
        "nbdcopy",
        &[image.to_str().expect("path"), &uri(&server.socket)],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(
        "nbdcopy",
        &[&uri(&server.socket), back.to_str().expect("path")],
    )
    .await;
    assert!(ok, "{out}");
    assert!(std::fs::read(&back).expect("read back") == content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fio_nbd_engine_verifies() {
    let server = start().await;
    let uri = uri(&server.socket);
    let (ok, out) = run(
        "fio",
        &[
            "--name=verify",
            "--ioengine=nbd",
            &format!("--uri={uri}"),
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=16",
            "--size=16M",
            "--verify=crc32c",
            "--do_verify=1",
            "--numjobs=1",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(!out.contains("verify: bad"), "{out}");
}

/// Sends raw bytes, reads whatever comes back until the server closes or goes quiet.
async fn poke(socket: &Path, bytes: &[u8]) {
    let Ok(mut stream) = UnixStream::connect(socket).await else {
        panic!("server stopped accepting connections");
    };
    let _ = stream.write_all(bytes).await;
    let mut sink = vec![0; 1 << 16];
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn option(code: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = 0x4948_4156_454F_5054u64.to_be_bytes().to_vec();
    bytes.extend_from_slice(&code.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn go(name: &str) -> Vec<u8> {
    let mut data = (name.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(name.as_bytes());
    data.extend_from_slice(&0u16.to_be_bytes());
    option(7, &data)
}

fn request(command: u16, offset: u64, length: u32) -> Vec<u8> {
    let mut bytes = 0x2560_9513u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&command.to_be_bytes());
    bytes.extend_from_slice(&7u64.to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_neither_crashes_nor_damages() {
    let server = start().await;
    let (ok, out) = qemu_io(&uri(&server.socket), &["write -P 0x5a 0 1M"]).await;
    assert!(ok, "{out}");
    let flags = 3u32.to_be_bytes();
    let handshake = |rest: &[u8]| [&flags[..], rest].concat();
    let cases: Vec<Vec<u8>> = vec![
        b"garbage that is not NBD at all".to_vec(),
        0xffff_ffffu32.to_be_bytes().to_vec(),
        handshake(&[0; 16]),
        handshake(&option(7, &[0xff; 3])),
        handshake(&option(7, &[0, 0, 0, 200, b'x'])),
        handshake(&option(6, &[0xff, 0xff, 0xff, 0xff, 0, 0])),
        handshake(&option(3, b"unexpected payload")),
        handshake(&option(99, b"unknown option")),
        handshake(&option(5, &[])),
        handshake(&option(1, b"vol-does-not-exist")),
        handshake(&[
            0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff,
        ]),
        [
            handshake(&go(VOLUME)),
            b"not a request header at all".to_vec(),
        ]
        .concat(),
        [handshake(&go(VOLUME)), request(0, SIZE - 512, 4096)].concat(),
        [handshake(&go(VOLUME)), request(0, u64::MAX - 10, 4096)].concat(),
        [handshake(&go(VOLUME)), request(0, 0, u32::MAX)].concat(),
        [handshake(&go(VOLUME)), request(1, SIZE, 512), vec![1; 512]].concat(),
        [handshake(&go(VOLUME)), request(1, 0, u32::MAX)].concat(),
        [handshake(&go(VOLUME)), request(4, u64::MAX, 4096)].concat(),
        [handshake(&go(VOLUME)), request(6, SIZE, 1)].concat(),
        [handshake(&go(VOLUME)), request(42, 0, 512)].concat(),
        [handshake(&go(VOLUME)), request(1, 0, 4096), vec![9; 100]].concat(),
    ];
    for case in &cases {
        poke(&server.socket, case).await;
    }
    let (ok, out) = qemu_io(&uri(&server.socket), &["read -P 0x5a 0 1M"]).await;
    assert!(ok && !out.contains("fail"), "{out}");
}
