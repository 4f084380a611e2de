//! `nimbus`: self-hosted EC2 and EBS. `nimbus serve` runs the API; see `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nimbus_core::Config;

#[derive(Parser)]
#[command(
    name = "nimbus",
    version,
    about = "Amazon EC2 and EBS that you run yourself"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the API server (EC2 Query and EBS direct APIs on one endpoint).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address for the API (default 127.0.0.1:4566).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where state, volumes and images live (default ~/.local/share/nimbus).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file; command-line flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Also serve volumes over NBD on this TCP address (the unix socket is always there).
    #[arg(long)]
    nbd_listen: Option<SocketAddr>,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if self.nbd_listen.is_some() {
            config.nbd_listen = self.nbd_listen;
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = args.config()?;
            runtime()?.block_on(serve(config))
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// The data dir's exclusive lock: one nimbus process per data dir.
fn lock_data_dir(config: &Config) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let lock = std::fs::File::create(config.data_dir.join("nimbus.lock"))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another nimbus is using data dir {} (stop it first)",
            config.data_dir.display()
        )
    })?;
    Ok(lock)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let lock = lock_data_dir(&config)?;
    let listen = config.listen;
    let store = Arc::new(store::SqliteStore::open(&config.data_dir.join("state.db"))?);
    let control = Arc::new(control::Control::open(config, store)?);
    let context = Arc::new(api::ApiContext { control });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "nimbus is serving");
    axum::serve(listener, api::router(context))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("nimbus stopped");
    drop(lock);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop nimbus with kill -9");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
