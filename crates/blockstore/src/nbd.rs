//! NBD server (fixed newstyle handshake, simple replies) exporting volumes by their IDs:
//! every volume on the operator's sockets, only a VM's own on that VM's socket
//! (`vm_socket.rs`). Protocol: NetworkBlockDevice/nbd `doc/proto.md`.
//!
//! Per connection one task reads requests and runs them concurrently as futures it polls
//! itself: a request that needs no waiting (a page-cache read, a small write) completes on
//! its first poll, with no hand-off to another thread; slower ones (disk reads, flushes,
//! throttling) wake the task when done. One writer task sends the replies in completion
//! order.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    BufWriter,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::io_counters::Direction;
use crate::store::BlockStore;
use crate::volume::Volume;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_STARTTLS: u32 = 5;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;

const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_POLICY: u32 = (1 << 31) + 2;
const REP_ERR_INVALID: u32 = (1 << 31) + 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;

const INFO_EXPORT: u16 = 0;
const INFO_NAME: u16 = 1;
const INFO_BLOCK_SIZE: u16 = 3;

const TFLAG_HAS_FLAGS: u16 = 1;
const TFLAG_SEND_FLUSH: u16 = 4;
const TFLAG_SEND_FUA: u16 = 8;
const TFLAG_SEND_TRIM: u16 = 32;
const TFLAG_SEND_WRITE_ZEROES: u16 = 64;
/// A FLUSH on any connection makes the completed writes of all connections durable,
/// since they share one data file and fdatasync covers it all.
const TFLAG_CAN_MULTI_CONN: u16 = 256;
const TRANSMISSION_FLAGS: u16 = TFLAG_HAS_FLAGS
    | TFLAG_SEND_FLUSH
    | TFLAG_SEND_FUA
    | TFLAG_SEND_TRIM
    | TFLAG_SEND_WRITE_ZEROES
    | TFLAG_CAN_MULTI_CONN;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_FLAG_FUA: u16 = 1;

const EIO: u32 = 5;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// Largest option payload accepted during the handshake.
const MAX_OPTION_LENGTH: u32 = 64 << 10;
/// Largest READ or WRITE payload, advertised as the maximum block size.
const MAX_PAYLOAD: u32 = 32 << 20;
const PREFERRED_BLOCK: u32 = 4096;
/// Requests one connection may have in flight.
const MAX_IN_FLIGHT: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which exports a connection may list and open; an export it may not open answers as
/// one that does not exist.
pub type ExportFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Binds a unix socket for NBD, replacing a stale socket file, readable by the owner only.
pub fn bind_nbd_unix(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

impl BlockStore {
    /// Serves NBD on a unix socket (see [`bind_nbd_unix`]) until the listener fails.
    pub async fn serve_nbd_unix(&self, listener: UnixListener) -> Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            self.spawn_connection(stream, None);
        }
    }

    /// Serves NBD on TCP until the listener fails.
    pub async fn serve_nbd_tcp(&self, listener: TcpListener) -> Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            // Replies are small and latency-bound.
            let _ = stream.set_nodelay(true);
            self.spawn_connection(stream, None);
        }
    }

    /// Serves one connection, limited to the exports `filter` admits (all without one).
    pub(crate) fn spawn_connection<S: AsyncRead + AsyncWrite + Send + 'static>(
        &self,
        stream: S,
        filter: Option<ExportFilter>,
    ) {
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.serve_connection(stream, filter).await {
                tracing::debug!(error = %e, "NBD connection closed");
            }
        });
    }

    async fn serve_connection<S: AsyncRead + AsyncWrite + Send + 'static>(
        &self,
        stream: S,
        filter: Option<ExportFilter>,
    ) -> Result<()> {
        let (reader, writer) = tokio::io::split(stream);
        // Buffered: a request header and a small write payload arrive in one read.
        let mut reader = BufReader::with_capacity(256 << 10, reader);
        let mut writer = BufWriter::new(writer);
        let volume = match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.handshake(&mut reader, &mut writer, filter.as_ref()),
        )
        .await
        {
            Ok(Ok(Some(volume))) => volume,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        self.transmission(volume, reader, writer).await
    }

    /// Negotiates options until the client picks an export; `None` when it leaves.
    async fn handshake<R, W>(
        &self,
        reader: &mut R,
        writer: &mut W,
        filter: Option<&ExportFilter>,
    ) -> Result<Option<Arc<Volume>>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        writer.write_u64(NBDMAGIC).await?;
        writer.write_u64(IHAVEOPT).await?;
        writer
            .write_u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
            .await?;
        writer.flush().await?;
        let client_flags = reader.read_u32().await?;
        if client_flags & !u32::from(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES) != 0 {
            return Ok(None);
        }
        let no_zeroes = client_flags & u32::from(FLAG_NO_ZEROES) != 0;
        loop {
            if reader.read_u64().await? != IHAVEOPT {
                return Ok(None);
            }
            let option = reader.read_u32().await?;
            let length = reader.read_u32().await?;
            if length > MAX_OPTION_LENGTH {
                // Skip the payload without storing it, then refuse.
                tokio::io::copy(&mut reader.take(length.into()), &mut tokio::io::sink()).await?;
                option_reply(writer, option, REP_ERR_TOO_BIG, &[]).await?;
                continue;
            }
            let mut data = vec![0; length as usize];
            reader.read_exact(&mut data).await?;
            match option {
                OPT_EXPORT_NAME => {
                    let Some(volume) = self.export(&data, filter) else {
                        return Ok(None);
                    };
                    writer.write_u64(volume.size()).await?;
                    writer.write_u16(TRANSMISSION_FLAGS).await?;
                    if !no_zeroes {
                        writer.write_all(&[0; 124]).await?;
                    }
                    writer.flush().await?;
                    return Ok(Some(volume));
                }
                OPT_ABORT => {
                    option_reply(writer, option, REP_ACK, &[]).await?;
                    return Ok(None);
                }
                OPT_LIST if data.is_empty() => {
                    let listed = self.list_volumes().into_iter();
                    for id in listed.filter(|id| filter.is_none_or(|may_open| may_open(id))) {
                        let mut payload = (id.len() as u32).to_be_bytes().to_vec();
                        payload.extend_from_slice(id.as_bytes());
                        option_reply(writer, option, REP_SERVER, &payload).await?;
                    }
                    option_reply(writer, option, REP_ACK, &[]).await?;
                }
                OPT_INFO | OPT_GO => {
                    let Some((name, requests)) = parse_info_request(&data) else {
                        option_reply(writer, option, REP_ERR_INVALID, &[]).await?;
                        continue;
                    };
                    let Some(volume) = self.export(name, filter) else {
                        option_reply(writer, option, REP_ERR_UNKNOWN, b"no such export").await?;
                        continue;
                    };
                    let mut export = INFO_EXPORT.to_be_bytes().to_vec();
                    export.extend_from_slice(&volume.size().to_be_bytes());
                    export.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
                    option_reply(writer, option, REP_INFO, &export).await?;
                    if requests.contains(&INFO_NAME) {
                        let mut info = INFO_NAME.to_be_bytes().to_vec();
                        info.extend_from_slice(name);
                        option_reply(writer, option, REP_INFO, &info).await?;
                    }
                    if requests.contains(&INFO_BLOCK_SIZE) {
                        let mut info = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
                        for size in [1, PREFERRED_BLOCK, MAX_PAYLOAD] {
                            info.extend_from_slice(&size.to_be_bytes());
                        }
                        option_reply(writer, option, REP_INFO, &info).await?;
                    }
                    option_reply(writer, option, REP_ACK, &[]).await?;
                    if option == OPT_GO {
                        return Ok(Some(volume));
                    }
                }
                OPT_LIST => option_reply(writer, option, REP_ERR_INVALID, &[]).await?,
                OPT_STARTTLS => option_reply(writer, option, REP_ERR_POLICY, &[]).await?,
                _ => option_reply(writer, option, REP_ERR_UNSUP, &[]).await?,
            }
        }
    }

    fn export(&self, name: &[u8], filter: Option<&ExportFilter>) -> Option<Arc<Volume>> {
        let name = std::str::from_utf8(name).ok()?;
        if filter.is_some_and(|may_open| !may_open(name)) {
            return None;
        }
        self.volume(name).ok()
    }

    async fn transmission<R, W>(&self, volume: Arc<Volume>, mut reader: R, writer: W) -> Result<()>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (replies, mut queue) = mpsc::channel::<Reply>(MAX_IN_FLIGHT);
        let writer_task = tokio::spawn(async move {
            let mut writer = writer;
            while let Some(reply) = queue.recv().await {
                write_reply(&mut writer, &reply).await?;
                // Batch replies that are already waiting into one write.
                while let Ok(reply) = queue.try_recv() {
                    write_reply(&mut writer, &reply).await?;
                }
                writer.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut running = FuturesUnordered::new();
        let mut header = [0u8; 28];
        let outcome = loop {
            tokio::select! {
                biased;
                Some(reply) = running.next(), if !running.is_empty() => {
                    if replies.send(reply).await.is_err() {
                        break Ok(());
                    }
                    continue;
                }
                // Cancel-safe: it only waits for the next request's first bytes.
                filled = reader.fill_buf(), if running.len() < MAX_IN_FLIGHT => match filled {
                    Ok([]) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e.into()),
                },
            }
            if let Err(e) = reader.read_exact(&mut header).await {
                break Err(e.into());
            }
            let request = Request::parse(&header);
            if request.magic != REQUEST_MAGIC {
                break Ok(());
            }
            let payload = if request.command == CMD_WRITE {
                if request.length > MAX_PAYLOAD {
                    // The stream cannot be resynchronised after an oversized write.
                    break Ok(());
                }
                let mut data = vec![0; request.length as usize];
                if let Err(e) = reader.read_exact(&mut data).await {
                    break Err(e.into());
                }
                Some(data)
            } else {
                None
            };
            if request.command == CMD_DISC {
                break Ok(());
            }
            let volume = volume.clone();
            running.push(async move { self.execute(&volume, &request, payload).await });
        };
        // Requests already received still get their replies.
        while let Some(reply) = running.next().await {
            let _ = replies.send(reply).await;
        }
        drop(replies);
        let written = writer_task.await?;
        outcome.and(written.map_err(Error::from))
    }

    async fn execute(
        &self,
        volume: &Arc<Volume>,
        request: &Request,
        payload: Option<Vec<u8>>,
    ) -> Reply {
        let objects = &self.inner.objects;
        let fua = request.flags & CMD_FLAG_FUA != 0;
        let (offset, length) = (request.offset, u64::from(request.length));
        let started = volume.counters.start();
        let result = match request.command {
            CMD_READ if request.length > MAX_PAYLOAD => Err(EINVAL),
            CMD_READ => volume
                .read(objects, offset, request.length)
                .await
                .map(Some)
                .map_err(|e| errno(&e, EINVAL)),
            CMD_WRITE => volume
                .write(objects, offset, length, payload, fua)
                .await
                .map(|_| None)
                .map_err(|e| errno(&e, ENOSPC)),
            CMD_TRIM | CMD_WRITE_ZEROES => volume
                .write(objects, offset, length, None, fua)
                .await
                .map(|_| None)
                .map_err(|e| errno(&e, ENOSPC)),
            CMD_FLUSH => volume
                .flush()
                .await
                .map(|_| None)
                .map_err(|e| errno(&e, EIO)),
            _ => Err(EINVAL),
        };
        let direction = match request.command {
            CMD_READ => Some(Direction::Read),
            CMD_WRITE | CMD_WRITE_ZEROES => Some(Direction::Write),
            _ => None,
        };
        match direction.filter(|_| result.is_ok()) {
            Some(direction) => volume.counters.finish(started, direction, length),
            None => volume.counters.end_request(),
        }
        match result {
            Ok(data) => Reply {
                handle: request.handle,
                error: 0,
                data,
            },
            Err(error) => Reply {
                handle: request.handle,
                error,
                data: None,
            },
        }
    }
}

struct Request {
    magic: u32,
    flags: u16,
    command: u16,
    handle: u64,
    offset: u64,
    length: u32,
}

impl Request {
    fn parse(h: &[u8; 28]) -> Self {
        let u16_at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        Request {
            magic: u32_at(0),
            flags: u16_at(4),
            command: u16_at(6),
            handle: u64_at(8),
            offset: u64_at(16),
            length: u32_at(24),
        }
    }
}

struct Reply {
    handle: u64,
    error: u32,
    data: Option<Vec<u8>>,
}

async fn write_reply<W: AsyncWrite + Unpin>(writer: &mut W, reply: &Reply) -> std::io::Result<()> {
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&reply.error.to_be_bytes());
    header[8..].copy_from_slice(&reply.handle.to_be_bytes());
    writer.write_all(&header).await?;
    if let Some(data) = &reply.data {
        writer.write_all(data).await?;
    }
    Ok(())
}

/// The NBD error for an engine error; `range_errno` for requests outside the volume.
fn errno(error: &Error, range_errno: u32) -> u32 {
    match error {
        Error::OutOfRange { .. } => range_errno,
        _ => EIO,
    }
}

async fn option_reply<W: AsyncWrite + Unpin>(
    writer: &mut W,
    option: u32,
    reply: u32,
    data: &[u8],
) -> Result<()> {
    writer.write_u64(OPTION_REPLY_MAGIC).await?;
    writer.write_u32(option).await?;
    writer.write_u32(reply).await?;
    writer.write_u32(data.len() as u32).await?;
    writer.write_all(data).await?;
    writer.flush().await?;
    Ok(())
}

/// Splits an NBD_OPT_INFO/GO payload into the export name and the requested info types.
fn parse_info_request(data: &[u8]) -> Option<(&[u8], Vec<u16>)> {
    let name_length = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let name = data.get(4..4usize.checked_add(name_length)?)?;
    let rest = &data[4 + name_length..];
    let count = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let list = rest.get(2..)?;
    if list.len() != count * 2 {
        return None;
    }
    Some((
        name,
        list.chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_request_parses_and_rejects_bad_lengths() {
        let mut data = 3u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"vol");
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        let (name, requests) = parse_info_request(&data).expect("valid request");
        assert_eq!(name, b"vol");
        assert_eq!(requests, vec![INFO_BLOCK_SIZE]);
        assert!(parse_info_request(&data[..data.len() - 1]).is_none());
        assert!(parse_info_request(&u32::MAX.to_be_bytes()).is_none());
        assert!(parse_info_request(&[]).is_none());
    }
}
