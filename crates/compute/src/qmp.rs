//! A small QMP client: the greeting, `qmp_capabilities`, commands with IDs, and events.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use crate::{Error, Result};

const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Events kept while nobody waits for them.
const KEPT_EVENTS: usize = 64;

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    /// Events received while waiting for replies.
    events: Vec<Value>,
}

impl Qmp {
    pub async fn connect(socket: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(socket).await?;
        let (reader, writer) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(reader),
            writer,
            next_id: 0,
            events: Vec::new(),
        };
        let greeting = qmp.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Qmp(format!("unexpected greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", json!({})).await?;
        Ok(qmp)
    }

    async fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_line(&mut line))
            .await
            .map_err(|_| Error::Qmp("QEMU did not answer in time".into()))??;
        if read == 0 {
            return Err(Error::Qmp("QEMU closed the QMP socket".into()));
        }
        serde_json::from_str(&line).map_err(|e| Error::Qmp(format!("bad QMP message: {e}")))
    }

    /// Runs a command and returns its `return` value.
    pub async fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        self.run(command, arguments, None).await
    }

    /// Runs a command with a file descriptor attached (SCM_RIGHTS), as `getfd` takes one.
    pub async fn execute_passing_fd(
        &mut self,
        command: &str,
        arguments: Value,
        fd: BorrowedFd<'_>,
    ) -> Result<Value> {
        self.run(command, arguments, Some(fd)).await
    }

    async fn run(
        &mut self,
        command: &str,
        arguments: Value,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "execute": command, "id": id });
        if arguments.as_object().is_some_and(|a| !a.is_empty()) {
            message["arguments"] = arguments;
        }
        let mut text = message.to_string();
        text.push('\n');
        match fd {
            None => self.writer.write_all(text.as_bytes()).await?,
            Some(fd) => self.send_with_fd(text.as_bytes(), fd).await?,
        }
        loop {
            let reply = self.read_message().await?;
            if reply.get("event").is_some() {
                self.keep_event(reply);
                continue;
            }
            if reply.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return Err(Error::Qmp(format!(
                    "{command}: {}",
                    error["desc"].as_str().unwrap_or("failed")
                )));
            }
            return Ok(reply.get("return").cloned().unwrap_or(Value::Null));
        }
    }

    /// Keeps an event for a later `wait_event` or `final_events`; a VM that runs for long
    /// sends many (resets, RTC changes), so only the latest [`KEPT_EVENTS`] are kept.
    fn keep_event(&mut self, event: Value) {
        if self.events.len() >= KEPT_EVENTS {
            self.events.remove(0);
        }
        self.events.push(event);
    }

    async fn send_with_fd(&self, bytes: &[u8], fd: BorrowedFd<'_>) -> Result<()> {
        use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let stream: &UnixStream = self.writer.as_ref();
        let fds = [fd];
        loop {
            stream.writable().await?;
            let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut ancillary = SendAncillaryBuffer::new(&mut space);
                ancillary.push(SendAncillaryMessage::ScmRights(&fds));
                sendmsg(
                    stream,
                    &[IoSlice::new(bytes)],
                    &mut ancillary,
                    SendFlags::empty(),
                )
                .map_err(std::io::Error::from)
            });
            match sent {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(_) => return Err(Error::Qmp("a short write passing a descriptor".into())),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Drops the received events matching `matches`, so a later `wait_event` sees only new
    /// ones.
    pub fn discard_events(&mut self, matches: impl Fn(&Value) -> bool) {
        self.events.retain(|event| !matches(event));
    }

    /// Waits for an event matching `matches` (already received ones count).
    pub async fn wait_event(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        if let Some(position) = self.events.iter().position(&matches) {
            return Ok(self.events.remove(position));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = tokio::time::timeout(remaining, self.read_message())
                .await
                .map_err(|_| Error::Qmp("the expected QMP event did not come".into()))??;
            if message.get("event").is_some() && matches(&message) {
                return Ok(message);
            }
        }
    }

    /// The events QEMU sent before it closed the socket (it has exited): those received
    /// earlier and those still unread.
    pub async fn final_events(&mut self) -> Vec<Value> {
        let mut events = std::mem::take(&mut self.events);
        while let Ok(message) = self.read_message().await {
            if message.get("event").is_some() {
                events.push(message);
            }
        }
        events
    }
}
