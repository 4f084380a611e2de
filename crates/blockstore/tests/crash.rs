//! Crash safety: `kill -9` the NBD server (`blockstore-nbd-server`) while a client
//! writes, flushes and sends FUA writes; after each restart every sector must hold the
//! version it had at the last acknowledged flush (or FUA write) or a version written
//! after it, never anything else. The volume starts from an imported image, so crashes
//! also hit the background copy from the snapshot.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const VOLUME: &str = "vol-crash";
const SIZE: u64 = 64 << 20;
const IMAGE_SIZE: u64 = 48 << 20;
const BLOCK: u64 = 4096;
const SECTOR: u64 = 512;
const ZERO: u64 = u64::MAX;

/// A sector's content: its (marked) index and the version that wrote it, repeated.
fn sector(index: u64, version: u64) -> [u8; SECTOR as usize] {
    let mut bytes = [0u8; SECTOR as usize];
    for (i, word) in bytes.chunks_exact_mut(8).enumerate() {
        let value = if i % 2 == 0 {
            index ^ 0xa5a5_a5a5_0000_0000
        } else {
            version
        };
        word.copy_from_slice(&value.to_le_bytes());
    }
    bytes
}

fn decode(index: u64, bytes: &[u8]) -> Option<u64> {
    if bytes.iter().all(|b| *b == 0) {
        return Some(ZERO);
    }
    let version = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    (bytes == sector(index, version)).then_some(version)
}

struct Client {
    stream: UnixStream,
}

impl Client {
    fn connect(socket: &Path) -> std::io::Result<Client> {
        let mut stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut greeting = [0u8; 18];
        stream.read_exact(&mut greeting)?;
        let mut hello = 3u32.to_be_bytes().to_vec();
        hello.extend_from_slice(&0x4948_4156_454F_5054u64.to_be_bytes());
        hello.extend_from_slice(&7u32.to_be_bytes());
        hello.extend_from_slice(&(4 + VOLUME.len() as u32 + 2).to_be_bytes());
        hello.extend_from_slice(&(VOLUME.len() as u32).to_be_bytes());
        hello.extend_from_slice(VOLUME.as_bytes());
        hello.extend_from_slice(&0u16.to_be_bytes());
        stream.write_all(&hello)?;
        loop {
            let mut header = [0u8; 20];
            stream.read_exact(&mut header)?;
            let reply = u32::from_be_bytes(header[12..16].try_into().unwrap_or_default());
            let length = u32::from_be_bytes(header[16..20].try_into().unwrap_or_default());
            let mut data = vec![0; length as usize];
            stream.read_exact(&mut data)?;
            match reply {
                1 => return Ok(Client { stream }),
                3 => continue,
                _ => return Err(std::io::Error::other("export refused")),
            }
        }
    }

    fn send(
        &mut self,
        command: u16,
        flags: u16,
        offset: u64,
        length: u32,
        data: &[u8],
    ) -> std::io::Result<()> {
        let mut request = 0x2560_9513u32.to_be_bytes().to_vec();
        request.extend_from_slice(&flags.to_be_bytes());
        request.extend_from_slice(&command.to_be_bytes());
        request.extend_from_slice(&offset.to_be_bytes());
        request.extend_from_slice(&offset.to_be_bytes());
        request.extend_from_slice(&length.to_be_bytes());
        request.extend_from_slice(data);
        self.stream.write_all(&request)
    }

    /// Reads one simple reply; returns its handle (the request's offset) on success.
    fn reply(&mut self, payload: Option<&mut [u8]>) -> std::io::Result<u64> {
        let mut header = [0u8; 16];
        self.stream.read_exact(&mut header)?;
        if header[4..8] != [0; 4] {
            return Err(std::io::Error::other("request failed"));
        }
        if let Some(payload) = payload {
            self.stream.read_exact(payload)?;
        }
        Ok(u64::from_be_bytes(
            header[8..16].try_into().unwrap_or_default(),
        ))
    }
}

/// The server process, killed when the test ends (also on failure).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path, image: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blockstore-nbd-server"))
        .arg(dir.join("data"))
        .arg(dir.join("nbd.sock"))
        .arg(VOLUME)
        .arg(SIZE.to_string())
        .arg(image)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start blockstore-nbd-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("server output");
    let server = Server(child);
    assert_eq!(line.trim(), "ready");
    server
}

/// Per sector: the durable version and versions written after it.
struct Model {
    durable: Vec<u64>,
    pending: HashMap<u64, Vec<u64>>,
}

impl Model {
    fn verify_and_settle(&mut self, client: &mut Client) {
        client.send(3, 0, 0, 0, &[]).expect("flush");
        client.reply(None).expect("flush reply");
        let step = 1u64 << 20;
        let mut data = vec![0u8; step as usize];
        for offset in (0..SIZE).step_by(step as usize) {
            client.send(0, 0, offset, step as u32, &[]).expect("read");
            client.reply(Some(&mut data)).expect("read reply");
            for (i, bytes) in data.chunks_exact(SECTOR as usize).enumerate() {
                let index = offset / SECTOR + i as u64;
                let found = decode(index, bytes);
                let allowed = Some(self.durable[index as usize]) == found
                    || self
                        .pending
                        .get(&index)
                        .is_some_and(|p| found.is_some_and(|f| p.contains(&f)));
                assert!(
                    allowed,
                    "sector {index}: found {found:?}, durable {}, pending {:?}",
                    self.durable[index as usize],
                    self.pending.get(&index)
                );
                self.durable[index as usize] = found.unwrap_or(ZERO);
            }
        }
        self.pending.clear();
    }
}

#[test]
fn kill_9_loses_no_flushed_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image.raw");
    let sectors = SIZE / SECTOR;
    let image_sectors = IMAGE_SIZE / SECTOR;
    let content: Vec<u8> = (0..image_sectors).flat_map(|i| sector(i, 0)).collect();
    std::fs::write(&image, content).expect("image");
    let mut model = Model {
        durable: (0..sectors)
            .map(|i| if i < image_sectors { 0 } else { ZERO })
            .collect(),
        pending: HashMap::new(),
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut version = 1;
    for round in 0..5 {
        let server = start_server(dir.path(), &image);
        let mut client = Client::connect(&dir.path().join("nbd.sock")).expect("connect");
        model.verify_and_settle(&mut client);
        let pid = server.0.id();
        let delay = Duration::from_millis(50 + random() % 300);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        'writing: for batch in 0..100_000u64 {
            let mut sent = Vec::new();
            for _ in 0..16 {
                // Writes in flight together never overlap: NBD leaves the order of
                // overlapping requests to the server, so either could land last.
                let block = loop {
                    let block = random() % (SIZE / BLOCK);
                    if sent.iter().all(|(b, _, _)| *b != block) {
                        break block;
                    }
                };
                let fua = random() % 8 == 0;
                let data: Vec<u8> = (0..BLOCK / SECTOR)
                    .flat_map(|s| sector(block * 8 + s, version))
                    .collect();
                for s in 0..BLOCK / SECTOR {
                    model
                        .pending
                        .entry(block * 8 + s)
                        .or_default()
                        .push(version);
                }
                if client
                    .send(1, u16::from(fua), block * BLOCK, BLOCK as u32, &data)
                    .is_err()
                {
                    break 'writing;
                }
                sent.push((block, version, fua));
                version += 1;
            }
            for _ in 0..sent.len() {
                let Ok(handle) = client.reply(None) else {
                    break 'writing;
                };
                if let Some((block, v, true)) =
                    sent.iter().copied().find(|(b, _, _)| b * BLOCK == handle)
                {
                    // An acknowledged FUA write is durable; only later versions may replace it.
                    for s in 0..BLOCK / SECTOR {
                        let index = block * 8 + s;
                        let newest = sent
                            .iter()
                            .filter(|(b, _, _)| *b == block)
                            .map(|(_, v, _)| *v)
                            .max();
                        if newest == Some(v) {
                            model.durable[index as usize] = v;
                            model.pending.remove(&index);
                        }
                    }
                }
            }
            if batch % 4 == 3 {
                if client.send(3, 0, 0, 0, &[]).is_err() || client.reply(None).is_err() {
                    break 'writing;
                }
                for (index, versions) in model.pending.drain() {
                    if let Some(newest) = versions.iter().max() {
                        model.durable[index as usize] = *newest;
                    }
                }
            }
        }
        killer.join().expect("killer");
        drop(server);
        eprintln!("round {round}: killed after version {version}");
    }
    let _server = start_server(dir.path(), &image);
    let mut client = Client::connect(&dir.path().join("nbd.sock")).expect("connect");
    model.verify_and_settle(&mut client);
}
