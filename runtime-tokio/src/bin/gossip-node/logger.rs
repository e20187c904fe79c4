//! The stderr logger, written by a thread of its own so that a stderr nobody reads
//! (a full pipe) never blocks the node.

use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Log lines waiting for stderr at most; more are dropped (and counted) while it is
/// stuck. At the default level the node logs at most about 20 connection lines a second
/// (plus a few lifecycle lines), so this holds minutes of them; a line is a few hundred
/// bytes, so about 1 MB.
const BUFFERED_LINES: usize = 4096;

/// The installed logger. [`finish`](Self::finish) it at exit to write what waits.
pub struct Logger {
    worker: WorkerGuard,
    dropped: ErrorCounter,
}

impl Logger {
    /// Installs the logger with `filter` (a `RUST_LOG` in the environment overrides it).
    pub fn install(filter: &str) -> Self {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
        let (writer, worker) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(BUFFERED_LINES)
            .thread_name("gossip-node-log")
            .finish(std::io::stderr());
        let dropped = writer.error_counter();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        Logger { worker, dropped }
    }

    /// Writes the lines still waiting, for [`FLUSH_WAIT`] at most: if stderr is stuck
    /// (a pipe nobody reads) the process exits without them rather than hang. Says how
    /// many lines were dropped while it was stuck, if any.
    pub fn finish(self) {
        // The guard's drop waits for the writer thread (about a second at most), then
        // reports a queue still full on stdout, which may be stuck too: so it is
        // dropped by a thread of its own, and waited for only so long.
        let (done, finished) = std::sync::mpsc::channel();
        let Logger { worker, dropped } = self;
        std::thread::spawn(move || {
            drop(worker);
            // After every queued line, so not dropped itself.
            let dropped = dropped.dropped_lines();
            if dropped > 0 {
                eprintln!("gossip-node: {dropped} log lines dropped while stderr was not read");
            }
            let _ = done.send(());
        });
        let _ = finished.recv_timeout(FLUSH_WAIT);
    }
}

/// How long [`Logger::finish`] waits for stderr to take what waits.
const FLUSH_WAIT: Duration = Duration::from_millis(1500);
