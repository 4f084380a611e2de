//! `nimbus`: self-hosted EC2 and EBS. `nimbus serve` runs the API; see `--help`.

use control::images::ImageQueries;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nimbus_core::Config;

mod data_dir;

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
    /// Removes what nimbus servers that are gone left on this host's network: VPC
    /// namespaces of deleted data dirs, or of ended servers with no guest in them, and
    /// their host tables (a starting server does the same).
    Sweep,
    /// Builds and registers the default images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Builds `nimbus-minimal` from Debian packages and registers it as an AMI in the data dir.
    Build(ImageBuildArgs),
}

#[derive(clap::Args)]
struct ImageBuildArgs {
    /// The data dir of the nimbus that will serve the image (default ~/.local/share/nimbus).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where built artifacts are cached between builds (default <data-dir>/image-cache).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// A TOML configuration file (for the object store of snapshots).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Also build `debian-12` (debootstrap from the Debian mirror: systemd, cloud-init, sshd).
    #[arg(long)]
    debian_12: bool,
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
    /// Listen on a non-loopback address even though the default test/test credentials are
    /// accepted (otherwise refused, as Redis's protected mode does).
    #[arg(long)]
    allow_default_credentials: bool,
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
        config.allow_default_credentials |= self.allow_default_credentials;
        config.check_protected_mode()?;
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    data_dir::restrict_umask();
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
        Command::Sweep => runtime()?.block_on(async {
            let removed = network::LinuxNetwork::sweep_leftovers().await?;
            tracing::info!(?removed, "swept the VPCs of servers that are gone");
            Ok(())
        }),
        Command::Image {
            command: ImageCommand::Build(args),
        } => {
            let mut config = match &args.config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            if let Some(dir) = &args.data_dir {
                config.data_dir = dir.clone();
            }
            let cache_dir = args
                .cache_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("image-cache"));
            runtime()?.block_on(build_images(config, cache_dir, args.debian_12))
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// The control plane over this host's drivers, and the block store, whose NBD server the
/// caller may start.
/// EC2's control plane over `store` (the resource records of every service), and the block
/// store its volumes live in.
async fn open_control(
    config: Config,
    store: Arc<dyn store::Store>,
) -> anyhow::Result<(Arc<control::Control>, blockstore::BlockStore)> {
    let objects = match &config.object_store {
        Some(s3) => blockstore::ObjectStoreSpec::S3(s3.clone()),
        None => blockstore::ObjectStoreSpec::Local(config.data_dir.join("objects")),
    };
    let engine = blockstore::BlockStore::open(&config.data_dir.join("blockstore"), objects).await?;
    let public_ip_pool: ipnet::Ipv4Net = config.public_ip_pool.parse().map_err(|e| {
        anyhow::anyhow!(
            "public_ip_pool {:?} is not a CIDR: {e}",
            config.public_ip_pool
        )
    })?;
    let routed_back = (config.public_ip_routed_networks.iter())
        .map(|network| {
            network.parse().map_err(|e| {
                anyhow::anyhow!("public_ip_routed_networks: {network:?} is not a CIDR: {e}")
            })
        })
        .collect::<anyhow::Result<Vec<ipnet::Ipv4Net>>>()?;
    let network = network::LinuxNetwork::new(config.data_dir.join("network"), public_ip_pool)
        .with_routed_back(routed_back)
        .reachable_from_guests(config.network.reachable_from_guests.clone());
    let drivers = control::Drivers::on_host(engine.clone(), Arc::new(network));
    Ok((
        Arc::new(control::Control::open(config, store, drivers)?),
        engine,
    ))
}

async fn build_images(config: Config, cache_dir: PathBuf, debian: bool) -> anyhow::Result<()> {
    let _lock = data_dir::open(&config.data_dir)?;
    let progress = indicatif::ProgressBar::new(100);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg:40} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = |step: &str, done: u64, total: u64| {
        progress.set_length(total.max(1));
        progress.set_position(done);
        progress.set_message(step.to_owned());
    };
    let mut built = vec![(
        control::images::DEFAULT_IMAGE_NAME,
        "Debian cloud kernel, busybox and dropbear; runs user data from IMDS",
        compute::build_minimal_image(&cache_dir, report).await?,
    )];
    if debian {
        built.push((
            "debian-12",
            "Debian 12 with systemd, cloud-init (EC2 datasource), openssh-server and python3",
            compute::build_debian12_image(&cache_dir, report).await?,
        ));
    }
    progress.finish_with_message("images built");
    let data_dir = config.data_dir.clone();
    let store = Arc::new(store::SqliteStore::open(&config.data_dir.join("state.db"))?);
    let (control, _) = open_control(config, store).await?;
    for (name, description, artifacts) in built {
        register_image(
            &control,
            &data_dir.join("images").join(name),
            name,
            description,
            &artifacts,
        )
        .await?;
    }
    // The image cache may be in the data dir, and copied boot files keep their modes.
    data_dir::tighten(&data_dir)
}

/// Registers a built image as an AMI, once per build of its inputs (rerunning is a no-op).
async fn register_image(
    control: &control::Control,
    images_dir: &std::path::Path,
    name: &str,
    description: &str,
    artifacts: &compute::ImageArtifacts,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(images_dir)?;
    let kernel = images_dir.join("vmlinuz");
    let initrd = images_dir.join("initrd.img");
    std::fs::copy(&artifacts.kernel, &kernel)?;
    std::fs::copy(&artifacts.initrd, &initrd)?;
    let digest_file = images_dir.join("digest");
    let registered = control.read().image_by_name(name).is_some();
    if registered
        && std::fs::read_to_string(&digest_file).ok().as_deref() == Some(artifacts.digest.as_str())
    {
        println!("{name} is up to date");
        return Ok(());
    }
    let boot = control::images::BootFiles {
        kernel: kernel.display().to_string(),
        initrd: initrd.display().to_string(),
        cmdline: artifacts.kernel_cmdline.clone(),
    };
    let image = control
        .import_image(name, description, &artifacts.root_fs, boot)
        .await?;
    std::fs::write(&digest_file, &artifacts.digest)?;
    println!("{name} registered as {}", image.image_id);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let lock = data_dir::open(&config.data_dir)?;
    let listen = config.listen;
    let nbd_listen = config.nbd_listen;
    let nbd_socket = config.data_dir.join("nbd.sock");
    // CloudWatch's store; it is also the `MetricSink` the collectors push samples into.
    let monitoring = Arc::new(monitoring::Monitoring::open(
        &config.data_dir.join("metrics.db"),
        &config.region,
        &config.account_id,
        Arc::new(monitoring::SystemClock),
    )?);
    let store = Arc::new(store::SqliteStore::open(&config.data_dir.join("state.db"))?);
    let autoscaling = Arc::new(autoscaling::AutoScaling::open(
        store.clone(),
        &config.region,
        &config.account_id,
        autoscaling::alarm_period_secs(config.metrics_interval_secs),
    )?);
    autoscaling.set_cloudwatch(monitoring.clone(), monitoring.clone());
    monitoring.set_scaling_policies(autoscaling.clone());
    let ec2_for_autoscaling = Arc::new(api::Ec2ForAutoScaling::new(&config.account_id));
    autoscaling.set_ec2(ec2_for_autoscaling.clone());
    let (control, engine) = open_control(config, store.clone()).await?;
    let ssm = Arc::new(ssm::Ssm::open(
        store.clone(),
        &control.config().region,
        &control.config().account_id,
        Arc::new(api::Ec2Images(control.clone())),
    )?);
    let config = control.config();
    let elbv2 = Arc::new(elbv2::Elbv2::open(
        store,
        &config.region,
        &config.account_id,
        Arc::new(balancer::HaproxyBalancers::new(
            config.data_dir.join("balancers"),
        )),
        (!config.hosts_file.is_empty()).then(|| PathBuf::from(&config.hosts_file)),
        &config.data_dir.display().to_string(),
    )?);
    elbv2.set_ec2(Arc::new(api::Ec2ForElbv2::new(control.clone())));
    elbv2.set_metric_sink(monitoring.clone());
    autoscaling.set_load_balancing(Arc::new(api::Elbv2ForAutoScaling::new(elbv2.clone())));
    monitoring.set_instance_actions(control.clone());
    let unix_listener = blockstore::bind_nbd_unix(&nbd_socket)?;
    let unix_engine = engine.clone();
    tokio::spawn(async move {
        if let Err(error) = unix_engine.serve_nbd_unix(unix_listener).await {
            tracing::error!(%error, "NBD server (unix socket) stopped");
        }
    });
    if let Some(address) = nbd_listen {
        let tcp_listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen for NBD on {address}"))?;
        tokio::spawn(async move {
            if let Err(error) = engine.serve_nbd_tcp(tcp_listener).await {
                tracing::error!(%error, "NBD server (TCP) stopped");
            }
        });
    }
    // Every reconciler of every service, from one list.
    let reconcilers = [
        control::reconcilers(&control, monitoring.clone()),
        vec![Arc::new(monitoring::AlarmEvaluator::new(monitoring.clone())) as _],
        vec![Arc::new(autoscaling::FleetReconciler::new(autoscaling.clone())) as _],
        vec![Arc::new(elbv2::BalancerReconciler::new(elbv2.clone())) as _],
    ]
    .concat();
    let passes = Arc::new(engine::Passes::default());
    engine::reconciler::run_all(reconcilers, passes.clone());
    let context = Arc::new(api::ApiContext {
        control,
        monitoring,
        autoscaling,
        elbv2,
        ssm,
        passes,
        requests: Default::default(),
    });
    ec2_for_autoscaling.connect(&context);
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
