//! `gossip-node`: run a gossip node from the command line. See `gossip-node --help`.

mod cli;
mod demo;
mod input;
mod logger;
mod output;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use gossip_tokio::{Deliveries, GossipNode};
use tokio::io::BufReader;

use cli::{Cli, Command, LogLevel, ProtocolFlag};
use input::Line;
use output::Output;

/// How long shutdown waits for queued output to reach the peers.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = cli::parse_args(std::env::args_os()).unwrap_or_else(|error| error.exit());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gossip-node: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (result, logger) = match (&cli.command, cli.listen) {
        (Some(Command::Demo { nodes, logging }), _) => {
            let logger = logging.init(LogLevel::Warn);
            let summary = runtime.block_on(demo::run(usize::from(*nodes)));
            (summary.map(Some), logger)
        }
        (None, Some(listen)) => {
            let logger = cli.logging.init(LogLevel::Info);
            (
                runtime.block_on(run_node(&cli, listen)).map(|()| None),
                logger,
            )
        }
        (None, None) => unreachable!("clap requires LISTEN without a subcommand"),
    };
    logger.finish();
    // The stdin reader blocks in a thread of the runtime's blocking pool, and dropping a
    // runtime waits for those: an interactive terminal would hang the exit until Enter.
    runtime.shutdown_background();
    match result {
        Ok(summary) => {
            // The demo's verdict, after every log line.
            if let Some(summary) = summary {
                print!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gossip-node: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_node(cli: &Cli, listen: SocketAddr) -> std::io::Result<()> {
    let shutdown = ShutdownSignal::install()?;
    let mut node = GossipNode::start(cli.net_config(listen))
        .await
        .map_err(std::io::Error::other)?;

    let publisher = node.publisher();
    let max = cli.limits.max_frame;
    tokio::spawn(async move {
        // Each stdin line is one message. End of input does not stop the node.
        let mut lines = input::Lines::new(BufReader::new(tokio::io::stdin()), max);
        loop {
            match lines.next().await {
                Ok(Some(Line::Message(line))) => match publisher.publish(line).await {
                    Ok(outcome) => tracing::debug!(id = %outcome.id(), "published"),
                    Err(error) => tracing::error!(%error, "cannot publish line"),
                },
                Ok(Some(Line::TooLong(len))) => {
                    tracing::error!(len, max, "line longer than the largest message: skipped");
                }
                Ok(None) => break tracing::info!("stdin closed; still relaying"),
                Err(error) => break tracing::error!(%error, "cannot read stdin; still relaying"),
            }
        }
    });

    if let Some(interval) = cli.heartbeat {
        let publisher = node.publisher();
        let listen = node.local_addr();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            for n in 1u64.. {
                ticks.tick().await;
                let message = format!("hello from {listen} #{n}");
                if publisher.publish(message.into_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }

    // Deliveries are written by a thread of their own: a stdout that blocks (a pipe
    // nobody reads) must not block a runtime worker, and with it the node.
    let output = cli.output();
    let deliveries = node.take_deliveries();
    if output == Output::None {
        drop(deliveries); // relay only
    } else {
        std::thread::spawn(move || write_deliveries(deliveries, output));
    }

    let plumtree = cli.protocol == ProtocolFlag::Plumtree;
    let stopping = shutdown.received();
    tokio::pin!(stopping);
    let mut stats_ticks = cli.stats_every.map(|every| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        tokio::select! {
            () = &mut stopping => break,
            () = next_tick(&mut stats_ticks) => log_counters(&node, plumtree, "counters so far").await,
        }
    }
    tracing::info!("shutting down");
    log_counters(&node, plumtree, "counters").await;
    node.shutdown(SHUTDOWN_FLUSH).await;
    Ok(())
}

/// The next tick of `ticks`; never without.
async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => _ = ticks.tick().await,
        None => std::future::pending().await,
    }
}

/// Logs the node's counters at `info`, as `message`; plumtree's only if it speaks it (a
/// field that is `None` is left out of the line).
async fn log_counters(node: &GossipNode, plumtree: bool, message: &str) {
    let Ok(stats) = node.stats().await else {
        return;
    };
    let tree = plumtree.then_some(&stats);
    tracing::info!(
        delivered = stats.messages_delivered,
        published = stats.messages_published,
        duplicates = stats.duplicates,
        frames_out = stats.frames_out,
        copies_not_sent = stats.copies_not_sent,
        peers = stats.peers_current,
        slow_peers_cut = stats.slow_peer_disconnects,
        lost_with_disconnected_peers = stats.frames_lost_on_disconnect,
        dropped_for_output = stats.deliveries_dropped,
        evicted = stats.peers_evicted,
        control_frames_out = tree.map(|s| s.control_frames_out),
        grafts = tree.map(|s| s.grafts_sent),
        prunes = tree.map(|s| s.prunes_sent),
        shortcuts = tree.map(|s| s.shortcuts),
        repairs = tree.map(|s| s.repairs),
        promises_kept = tree.map(|s| s.promises_kept),
        caught_up = tree.map(|s| s.messages_caught_up),
        grafts_given_up = tree.map(|s| s.grafts_given_up),
        missed = tree.map(|s| s.messages_missed),
        graft_timeout_ms = tree.map(|s| s.graft_timeout.as_millis() as u64),
        stall_escapes = stats.stall_escapes,
        held_peer_escapes = stats.held_peer_escapes,
        lazy_escapes = tree.map(|s| s.lazy_escapes),
        queued_bytes = stats.queued_bytes,
        congested = stats.congested,
        "{message}"
    );
}

/// Writes each delivery as one record, as many as are waiting before each flush, until
/// the node stops or stdout is closed.
fn write_deliveries(mut deliveries: Deliveries, output: Output) {
    let stdout = std::io::stdout();
    // Large enough for many records per write: 4 KiB messages filled the default 8 KiB
    // buffer every two.
    let mut out = std::io::BufWriter::with_capacity(256 << 10, stdout.lock());
    while let Some(first) = futures_lite::future::block_on(deliveries.next()) {
        let batch = std::iter::once(first).chain(std::iter::from_fn(|| deliveries.try_next()));
        for delivery in batch {
            if output.write(&mut out, &delivery.payload).is_err() {
                return; // stdout closed
            }
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// Ctrl-C or SIGTERM. Created before the node announces itself, so that a signal sent as
/// soon as it is listening is handled rather than killing the process outright.
struct ShutdownSignal {
    #[cfg(unix)]
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl ShutdownSignal {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = (
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            );
            Ok(ShutdownSignal { signals })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.signals.0.recv() => {}
            _ = self.signals.1.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
