//! The `gossip-node` binary, run as a subprocess: stdin lines in, stdout lines out.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// `gossip-node ARGS` (`RUST_LOG` unset), stdin and stderr piped, stdout to `stdout`.
fn gossip_node(args: &[&str], stdout: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("gossip-node starts")
}

/// A running `gossip-node` with its stdout and stderr read by background threads.
struct NodeProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Log lines read while waiting for others, not yet asked for.
    unmatched_logs: RefCell<Vec<String>>,
    addr: SocketAddr,
    /// A stdout pipe left to the test (see `start_unread`), not read line by line.
    raw_stdout: Option<ChildStdout>,
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl NodeProcess {
    fn start(args: &[&str]) -> Self {
        Self::spawn("127.0.0.1:0", args, true)
    }

    /// A node that listens on `listen` (to start one again where it was).
    fn start_at(listen: SocketAddr, args: &[&str]) -> Self {
        Self::spawn(&listen.to_string(), args, true)
    }

    /// A node whose stdout is a pipe that nobody reads, like a paused `| less`.
    fn start_unread(args: &[&str]) -> Self {
        Self::spawn("127.0.0.1:0", args, false)
    }

    fn spawn(listen: &str, args: &[&str], read_stdout: bool) -> Self {
        let mut child = gossip_node(&[&[listen, "-v"], args].concat(), Stdio::piped());
        let stdin = child.stdin.take();
        let pipe = child.stdout.take().expect("piped");
        let (stdout, unread_stdout) = if read_stdout {
            (lines(pipe), None)
        } else {
            (channel().1, Some(pipe))
        };
        let stderr = lines(child.stderr.take().expect("piped"));
        let mut node = NodeProcess {
            child,
            stdin,
            stdout,
            stderr,
            unmatched_logs: RefCell::default(),
            addr: "0.0.0.0:0".parse().expect("valid"),
            raw_stdout: unread_stdout,
        };
        node.addr = listening_address(&node.log_line("listening"));
        node
    }

    /// Takes a log line containing `needle`, waiting for it if need be. Lines are matched
    /// in any order: tasks log concurrently (two peers' connections, say).
    fn log_line(&self, needle: &str) -> String {
        let mut unmatched = self.unmatched_logs.borrow_mut();
        if let Some(at) = unmatched.iter().position(|line| line.contains(needle)) {
            return unmatched.remove(at);
        }
        loop {
            let line = self
                .stderr
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no log line with {needle:?} in {unmatched:?}"));
            if line.contains(needle) {
                return line;
            }
            unmatched.push(line);
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    fn heard(&self) -> String {
        self.stdout.recv_timeout(WAIT).expect("a delivered line")
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

/// The address a "listening" log line names.
fn listening_address(line: &str) -> SocketAddr {
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a listening line names the address: {line}"));
    addr.parse().expect("an address")
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stdin_lines_reach_the_far_end_of_a_line_of_three() {
    let mut first = NodeProcess::start(&[]);
    let second = NodeProcess::start(&[&first.addr.to_string()]);
    let mut third = NodeProcess::start(&[&second.addr.to_string()]);
    second.log_line(": connected");
    second.log_line(": connected");
    third.log_line(": connected");
    first.log_line(": connected");
    first.say("hello through the middle");
    assert_eq!(third.heard(), "hello through the middle");
    assert_eq!(second.heard(), "hello through the middle");
    third.say("and back");
    assert_eq!(first.heard(), "and back");
}

/// Stdin lines are bytes: a line that is not UTF-8 is a message like any other, and one
/// longer than the largest message (1 MiB by default) is skipped, logged, and does not
/// stop the lines after it. (Before the thirteenth session a line that was not UTF-8
/// ended stdin for good, logged as "stdin closed".)
#[test]
fn stdin_lines_are_bytes_and_a_line_too_long_is_skipped() {
    let mut first = NodeProcess::start(&[]);
    let second = NodeProcess::start(&[&first.addr.to_string()]);
    second.log_line(": connected");
    first.log_line(": connected");
    let mut input = b"caf\xe9 in latin-1: caf\xe9\n".to_vec();
    input.extend(vec![b'x'; 2 << 20]);
    input.extend(b"\nafter both\n");
    // From a thread: a node that stopped reading its stdin must fail the test, not
    // hang it.
    let mut stdin = first.stdin.take().expect("stdin open");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input).and_then(|()| stdin.flush());
        stdin
    });
    // The text output writes bytes that are not UTF-8 as \xHH.
    assert_eq!(second.heard(), r"caf\xe9 in latin-1: caf\xe9");
    assert_eq!(second.heard(), "after both");
    let skipped = first.log_line("line longer than the largest message");
    assert!(skipped.contains("len=2097152"), "{skipped}");
    let _stdin = writer.join().expect("writer");
}

/// The same with `--protocol plumtree`: the links settle on plumtree (logged), and lines
/// cross both ways.
#[test]
fn a_line_of_three_plumtree_processes_relays_both_ways() {
    let plumtree = ["--protocol", "plumtree"];
    let mut first = NodeProcess::start(&plumtree);
    let first_addr = first.addr.to_string();
    let second = NodeProcess::start(&[&plumtree[..], &[&first_addr]].concat());
    let second_addr = second.addr.to_string();
    let mut third = NodeProcess::start(&[&plumtree[..], &[&second_addr]].concat());
    for node in [&first, &second, &second, &third] {
        assert!(node.log_line("protocol settled").contains("plumtree"));
    }
    first.say("hello through the tree");
    assert_eq!(third.heard(), "hello through the tree");
    assert_eq!(second.heard(), "hello through the tree");
    third.say("and back");
    assert_eq!(first.heard(), "and back");
}

/// #14's measurement, as users run it: in a line A <- B <- C, B is killed while A
/// publishes 1,000 lines (one every 5 ms), and started again at its address 2 s later,
/// while A still publishes. Returns how many of the lines C has heard once B is back
/// and both its links are up again, waiting at most `wait_for` for all of them.
fn restart_the_middle_of_a_line(protocol: &str, wait_for: Duration) -> usize {
    const LINES: usize = 1_000;
    let flags = ["--protocol", protocol];
    let mut a = NodeProcess::start(&flags);
    let a_addr = a.addr.to_string();
    let b = NodeProcess::start(&[&flags[..], &[&a_addr]].concat());
    let b_addr = b.addr;
    let c = NodeProcess::start(&[&flags[..], &[&b_addr.to_string()]].concat());
    for node in [&b, &b, &c] {
        node.log_line(": connected");
    }
    let stdin = a.stdin.take().expect("stdin open");
    let writer = std::thread::spawn(move || {
        let mut stdin = stdin;
        for n in 0..LINES {
            writeln!(stdin, "{n:08}").expect("write stdin");
            // The publisher's pace, not a wait for anything.
            std::thread::sleep(Duration::from_millis(5));
        }
        stdin
    });
    let mut heard = vec![false; LINES];
    let number = |line: String| line[..8].parse::<usize>().expect("a numbered line");
    for _ in 0..100 {
        heard[number(c.heard())] = true;
    }
    drop(b);
    // How long B stays down (the issue's 2 s), not a wait for anything.
    std::thread::sleep(Duration::from_secs(2));
    let b = NodeProcess::start_at(b_addr, &[&flags[..], &[&a_addr]].concat());
    b.log_line(": connected");
    b.log_line(": connected");
    let deadline = std::time::Instant::now() + wait_for;
    while heard.contains(&false) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.stdout.recv_timeout(left) {
            Ok(line) => heard[number(line)] = true,
            Err(_) => break,
        }
    }
    let _stdin = writer.join().expect("writer");
    let heard = heard.iter().filter(|&&heard| heard).count();
    let waited =
        wait_for.saturating_sub(deadline.saturating_duration_since(std::time::Instant::now()));
    eprintln!("{protocol}: C heard {heard} of {LINES}, waited {waited:?} after B was back");
    heard
}

/// Plumtree repairs what the far end missed: A's cache is announced to B when it comes
/// back, and B's to C.
#[test]
fn a_restarted_middle_plumtree_process_lets_the_far_end_catch_up() {
    let heard = restart_the_middle_of_a_line("plumtree", WAIT);
    assert_eq!(heard, 1_000, "missing at C: {}", 1_000 - heard);
}

/// Flood repairs nothing: what A published while B was down never reaches C (the
/// scenario does test repair).
#[test]
fn a_restarted_middle_flood_process_leaves_the_far_end_short() {
    let heard = restart_the_middle_of_a_line("flood", Duration::from_secs(2));
    assert!(heard < 1_000, "flood got everything across a restart");
}

#[test]
fn closing_stdin_does_not_stop_the_node() {
    let mut sender = NodeProcess::start(&[]);
    let mut relay = NodeProcess::start(&[&sender.addr.to_string()]);
    relay.log_line(": connected");
    sender.log_line(": connected");
    relay.stdin = None; // EOF on the relay's stdin
    relay.log_line("stdin closed");
    sender.say("still there?");
    assert_eq!(relay.heard(), "still there?");
    assert!(relay.child.try_wait().expect("status").is_none());
}

#[test]
fn heartbeat_publishes_hello_messages() {
    let beating = NodeProcess::start(&["--heartbeat", "50ms"]);
    let listener = NodeProcess::start(&[&beating.addr.to_string()]);
    let line = listener.heard();
    assert!(
        line.starts_with(&format!("hello from {} #", beating.addr)),
        "{line}"
    );
}

#[test]
fn stats_every_logs_the_counters_while_the_node_runs() {
    let mut sender = NodeProcess::start(&["--stats-every", "50ms"]);
    let listener = NodeProcess::start(&[&sender.addr.to_string()]);
    sender.log_line(": connected");
    sender.say("counted");
    assert_eq!(listener.heard(), "counted");
    let line = sender.log_line("published=1 ");
    assert!(line.contains("counters so far"), "{line}");
    // A flood node's line leaves plumtree's counters out.
    assert!(
        !line.contains("grafts=") && !line.contains("lazy_escapes="),
        "{line}"
    );
    assert!(sender.child.try_wait().expect("status").is_none());
}

#[test]
fn a_plumtree_node_counts_its_grafts_and_repairs_too() {
    let node = NodeProcess::start(&["--protocol", "plumtree", "--stats-every", "50ms"]);
    let line = node.log_line("counters so far");
    for field in [
        "delivered=0 ",
        "grafts=0 ",
        "repairs=0 ",
        "lazy_escapes=0 ",
        "graft_timeout_ms=",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
}

#[test]
fn four_gigabyte_prefix_is_dropped_and_memory_stays_small() {
    let mut node = NodeProcess::start(&[]);
    let listener = NodeProcess::start(&[&node.addr.to_string()]);
    node.log_line(": connected");
    let before = node.rss_kib();
    let mut attacker = TcpStream::connect(node.addr).expect("connect");
    attacker.set_read_timeout(Some(WAIT)).expect("timeout");
    attacker
        .write_all(&4_000_000_000u32.to_be_bytes())
        .expect("send prefix");
    let _ = attacker.write_all(&[0u8; 64 * 1024]);
    node.log_line("disconnected peer");
    let mut rest = Vec::new();
    let _ = attacker.read_to_end(&mut rest); // returns once the node closed it
    let after = node.rss_kib();
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    node.say("relaying as before");
    assert_eq!(listener.heard(), "relaying as before");
}

#[test]
fn demo_runs_and_reports_exactly_once() {
    // Logs and stdout in one pipe, as in a terminal: the verdict is the last line (the
    // nodes used to log that they would redial each other after it, while stopping).
    let output = Command::new("sh")
        .args(["-c", "\"$0\" demo --nodes 4 2>&1"])
        .arg(env!("CARGO_BIN_EXE_gossip-node"))
        .output()
        .expect("demo runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    let last = printed.lines().rev().find(|line| !line.is_empty());
    assert_eq!(
        last,
        Some("every node got every message exactly once (duplicates were dropped, not delivered)."),
        "{printed}"
    );
    // Its own lines only: the nodes' connection lines (which do not say which node
    // they are about) come with -v.
    assert!(!printed.contains(" INFO "), "{printed}");
    let verbose = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args(["demo", "--nodes", "3", "-v"])
        .output()
        .expect("demo runs");
    assert!(verbose.status.success());
    let logged = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        logged.contains(" INFO ") && logged.contains("connected"),
        "{logged}"
    );
}

#[test]
fn sigterm_stops_the_node_promptly_even_with_stdin_open() {
    let mut node = NodeProcess::start(&[]);
    assert!(node.stdin.is_some(), "stdin stays open, as in a terminal");
    signal(&node, "-TERM");
    exits_within(&mut node, Duration::from_secs(5));
    node.log_line("shutting down");
}

/// A line of three processes with default flags, connected.
fn line_of_three() -> (NodeProcess, NodeProcess, NodeProcess) {
    let first = NodeProcess::start(&[]);
    let second = NodeProcess::start(&[&first.addr.to_string()]);
    let third = NodeProcess::start(&[&second.addr.to_string()]);
    second.log_line(": connected");
    second.log_line(": connected");
    third.log_line(": connected");
    first.log_line(": connected");
    (first, second, third)
}

/// Writes `count` numbered lines of `width` more bytes into `node`'s stdin from a thread
/// (which keeps stdin open: closing it does not stop the node anyway).
fn feed_numbered_lines(
    node: &mut NodeProcess,
    count: usize,
    width: usize,
) -> std::thread::JoinHandle<ChildStdin> {
    feed_numbered_lines_into(node.stdin.take().expect("stdin open"), count, width)
}

fn feed_numbered_lines_into(
    mut stdin: ChildStdin,
    count: usize,
    width: usize,
) -> std::thread::JoinHandle<ChildStdin> {
    std::thread::spawn(move || {
        let padding = ".".repeat(width);
        for n in 0..count {
            writeln!(stdin, "{n:08} {padding}").expect("write stdin");
        }
        stdin
    })
}

/// Waits for `node` to exit successfully, for at most `limit`.
fn exits_within(node: &mut NodeProcess, limit: Duration) {
    child_exits_within(&mut node.child, limit);
}

fn child_exits_within(child: &mut Child, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("status") {
            assert!(status.success(), "{status}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running {limit:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Takes `count` lines from `node`'s stdout and checks they are `0..count` in order.
fn hears_numbered_lines(node: &NodeProcess, count: usize) {
    for n in 0..count {
        let line = node.heard();
        let number: usize = line[..8].parse().expect("a numbered line");
        assert_eq!(number, n, "line {n} missing or out of order");
    }
}

#[test]
fn a_hundred_thousand_stdin_lines_reach_the_far_end_of_a_line() {
    const LINES: usize = 100_000;
    let (mut first, _second, third) = line_of_three();
    let writer = feed_numbered_lines(&mut first, LINES, 20);
    hears_numbered_lines(&third, LINES);
    let _stdin = writer.join().expect("writer");
}

/// #11's table, as a user would try it: frames written into the first of three
/// processes as fast as TCP takes them all come out of the third one's stdout.
fn burst_through_three_processes(count: usize, size: usize) {
    let (first, _second, third) = line_of_three();
    let mut client = TcpStream::connect(first.addr).expect("connect");
    first.log_line(": connected");
    let writer = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for n in 0..count {
            let mut payload = format!("{n:08}").into_bytes();
            payload.resize(size, b'.');
            batch.extend_from_slice(&(size as u32).to_be_bytes());
            batch.extend_from_slice(&payload);
            if batch.len() >= 64 * 1024 || n + 1 == count {
                client
                    .write_all(&batch)
                    .expect("the first node takes the burst");
                batch.clear();
            }
        }
        client
    });
    hears_numbered_lines(&third, count);
    let _client = writer.join().expect("writer");
}

#[test]
fn a_burst_of_100k_small_frames_loses_nothing_through_three_processes() {
    burst_through_three_processes(100_000, 256);
}

#[test]
fn a_burst_of_20k_large_frames_loses_nothing_through_three_processes() {
    burst_through_three_processes(20_000, 4096);
}

/// #11: the application stops consuming (a pipe nobody reads). The middle node of a line
/// holds the network for at most `slow_peer_timeout` (10 s by default), then relays
/// without delivering to it; its memory stays within its budgets, and SIGTERM stops it.
#[test]
fn a_node_whose_stdout_is_never_read_keeps_relaying_and_stops_on_sigterm() {
    // 24 MB of messages: past the 16 MiB the middle node's output may fall behind by.
    const LINES: usize = 24_000;
    let mut first = NodeProcess::start(&[]);
    let middle = NodeProcess::start_unread(&[&first.addr.to_string()]);
    let third = NodeProcess::start(&[&middle.addr.to_string()]);
    middle.log_line(": connected");
    middle.log_line(": connected");
    third.log_line(": connected");
    first.log_line(": connected");
    let writer = feed_numbered_lines(&mut first, LINES, 1000);
    hears_numbered_lines(&third, LINES);
    let _stdin = writer.join().expect("writer");
    middle.log_line("application");
    let rss = middle.rss_kib();
    assert!(rss < 200 * 1024, "the middle node uses {rss} KiB");
    let mut middle = middle;
    signal(&middle, "-TERM");
    exits_within(&mut middle, Duration::from_secs(5));
}

/// A node whose stderr is a pipe nobody reads (a supervisor that does not drain it):
/// logging must not block it. With `-v` it logs a line per published message, far past
/// the pipe's 64 KiB (before its logger had a thread of its own, a peer got 846 of
/// 20,000 lines, and the node ignored SIGTERM).
#[test]
fn a_node_whose_stderr_is_never_read_keeps_relaying_and_stops_on_sigterm() {
    const LINES: usize = 20_000;
    let mut node = gossip_node(&["127.0.0.1:0", "-v"], Stdio::null());
    // Read until its peer is connected (publishing before that reaches no one), then
    // never again: the pipe stays open, unread, until `release` is dropped.
    let pipe = node.stderr.take().expect("piped");
    let mut node = KillOnDrop(node);
    let node = &mut node.0;
    let (logs, log_lines) = channel();
    let (release, released) = channel::<()>();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(pipe).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            let connected = line.contains(": connected");
            if logs.send(line).is_err() || connected {
                break;
            }
        }
        let _ = released.recv();
        drop(lines);
    });
    let read_until = |needle: &str| loop {
        let line = log_lines.recv_timeout(WAIT).expect("a log line");
        if line.contains(needle) {
            return line;
        }
    };
    let listening = read_until("listening");
    let addr = listening
        .split("addr=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next());
    let peer = NodeProcess::start(&[addr.expect("listening line names the address")]);
    read_until(": connected");
    peer.log_line(": connected");
    let writer = feed_numbered_lines_into(node.stdin.take().expect("piped"), LINES, 20);
    hears_numbered_lines(&peer, LINES);
    let _stdin = writer.join().expect("writer");
    send_signal(node.id(), "-TERM");
    child_exits_within(node, Duration::from_secs(5));
    drop(release);
}

/// A child process killed if the test ends first (a failed assertion).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Log lines that come within `quiet` (the node is idle by then), after those taken.
fn remaining_logs(node: &NodeProcess, quiet: Duration) -> Vec<String> {
    let mut lines = std::mem::take(&mut *node.unmatched_logs.borrow_mut());
    while let Ok(line) = node.stderr.recv_timeout(quiet) {
        lines.push(line);
    }
    lines
}

fn signal(node: &NodeProcess, name: &str) {
    send_signal(node.child.id(), name);
}

fn send_signal(pid: u32, name: &str) {
    let sent = Command::new("kill").args([name, &pid.to_string()]).status();
    assert!(sent.expect("kill runs").success());
}

/// A loopback address nobody listens on (for now).
fn free_address() -> SocketAddr {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    free.local_addr().expect("addr")
}

/// `gossip-node ARGS` exactly as given (default flags, no -v), stdout to /dev/null;
/// returns it and its log lines.
fn start_with_default_flags(args: &[&str]) -> (Child, Receiver<String>) {
    let mut node = gossip_node(args, Stdio::null());
    let stderr = lines(node.stderr.take().expect("piped"));
    (node, stderr)
}

/// #11: in a line A - B - C - D at default flags, D is stopped (SIGSTOP) while A
/// publishes 12 MB. Only C - D is cut (after the slow-peer timeout, 10 s); A - B and
/// B - C are neither cut nor redialled, and B and C get every message.
#[test]
fn a_stopped_process_is_cut_alone_and_the_others_keep_their_links() {
    const LINES: usize = 12_000; // past D's socket buffers and C's 4 MiB queue
    let (mut a, b, c) = line_of_three();
    let d = NodeProcess::start(&[&c.addr.to_string()]);
    c.log_line(": connected");
    d.log_line(": connected");
    signal(&d, "-STOP");
    let writer = feed_numbered_lines(&mut a, LINES, 1000);
    hears_numbered_lines(&c, LINES);
    hears_numbered_lines(&b, LINES);
    let _stdin = writer.join().expect("writer");
    assert!(c.log_line("disconnected peer").contains("slow peer"));
    let quiet = Duration::from_millis(500);
    for (name, node) in [("A", &a), ("B", &b), ("C", &c)] {
        let changes: Vec<String> = remaining_logs(node, quiet)
            .into_iter()
            .filter(|line| {
                [": connected", "connection closed", "disconnected peer"]
                    .iter()
                    .any(|event| line.contains(event))
            })
            .collect();
        assert!(changes.is_empty(), "{name}: {changes:?}");
    }
    signal(&d, "-CONT");
}

/// Sends one frame of `payload` to `node` from a fresh connection.
fn send_frame(node: &NodeProcess, payload: &[u8]) -> TcpStream {
    let mut client = TcpStream::connect(node.addr).expect("connect");
    node.log_line(": connected");
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    client.write_all(&frame).expect("send frame");
    client
}

#[test]
fn one_message_is_one_line_whatever_its_bytes_and_output_none_still_relays() {
    // client -> relay (--output none) -> printer (default text).
    let relay = NodeProcess::start(&["--output", "none"]);
    let printer = NodeProcess::start(&[&relay.addr.to_string()]);
    relay.log_line(": connected");
    printer.log_line(": connected");
    let _client = send_frame(&relay, b"two\nlines, a \\ and \xff");
    assert_eq!(printer.heard(), r"two\nlines, a \\ and \xff");
    let _second = send_frame(&relay, b"");
    assert_eq!(printer.heard(), "");
    assert!(relay
        .stdout
        .recv_timeout(Duration::from_millis(200))
        .is_err());
}

#[test]
fn binary_output_is_length_prefixed_frames() {
    let mut printer = NodeProcess::start_unread(&["--output", "binary"]);
    let _client = send_frame(&printer, b"line\none\0");
    let mut stdout = printer.raw_stdout.take().expect("raw stdout");
    let mut record = [0u8; 4 + 9];
    stdout.read_exact(&mut record).expect("one record");
    assert_eq!(&record, b"\0\0\0\x09line\none\0");
}

#[test]
fn settings_that_cannot_work_are_refused_at_start_with_the_reason() {
    for (flags, reason) in [
        (
            &["--max-outbound=0", "--max-inbound=0"][..],
            "max_outbound_peers + max_inbound_peers must be more than zero",
        ),
        (
            &["--max-frame=0"][..],
            "max_frame_len must be more than zero",
        ),
        (
            &["--peer-byte-rate=0"][..],
            "peer_rate_limit.bytes_per_second must be more than zero",
        ),
        // A redial delay of zero would dial a peer that is down in a busy loop.
        (&["--redial-initial=0s"][..], "must be more than zero"),
        // A flood node has no cache: refused, not ignored.
        (
            &["--cache-budget=1000000"][..],
            "--cache-budget is a plumtree setting: add --protocol plumtree",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
            .arg("127.0.0.1:0")
            .args(flags)
            .stdin(Stdio::null())
            .output()
            .expect("gossip-node runs");
        assert!(!output.status.success(), "{flags:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{flags:?}: {stderr}");
    }
    // An address in use names the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .arg(&addr)
        .stdin(Stdio::null())
        .output()
        .expect("gossip-node runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn default_flags_log_the_lifecycle() {
    // No -v: listening, a peer that does not answer yet (with the redial delay), the
    // connection once it does, and the counters at exit.
    let later = free_address();
    let (mut node, stderr) = start_with_default_flags(&["127.0.0.1:0", &later.to_string()]);
    let next = |needle: &str| loop {
        let line = stderr.recv_timeout(WAIT).expect("a log line");
        if line.contains(needle) {
            return line;
        }
    };
    next("listening");
    assert!(next("dial failed").contains("retry_in="));
    // Something listens there now (the kernel accepts for it): the redial connects.
    let _listener = std::net::TcpListener::bind(later).expect("bind again");
    next(": connected");
    send_signal(node.id(), "-TERM");
    next("counters");
    assert!(node.wait().expect("exit status").success());
}

/// The tutorial's second terminal: the peer is up, so the dial connects at once; still
/// "listening" is the node's first line, and it names the configured peer.
/// (Until the twentieth session the binary logged it once the diallers were running: 3
/// starts in 200 logged ": connected" first, and the line benchmark, which waits for
/// "listening" and then two connections, timed out. This test failed in each of four
/// runs against that order.)
#[test]
fn listening_is_logged_before_any_peer_connects() {
    let first = NodeProcess::start(&[]);
    // Many starts: the old order failed in a few of them.
    for _ in 0..200 {
        let (mut second, stderr) =
            start_with_default_flags(&["127.0.0.1:0", &first.addr.to_string()]);
        let line = stderr.recv_timeout(WAIT).expect("a first log line");
        assert!(line.contains("listening"), "first line: {line}");
        assert!(line.contains(&format!("peers=[{}]", first.addr)), "{line}");
        let next = stderr.recv_timeout(WAIT).expect("a second log line");
        assert!(next.contains(": connected"), "second line: {next}");
        let _ = second.kill();
        let _ = second.wait();
    }
}

#[test]
fn a_node_listed_as_its_own_peer_does_not_dial_itself() {
    let addr = free_address().to_string();
    let (mut node, stderr) = start_with_default_flags(&[&addr, &addr]);
    let until = |needle: &str| loop {
        let line = stderr.recv_timeout(WAIT).expect("a log line");
        assert!(!line.contains(": connected"), "dialled itself: {line}");
        if line.contains(needle) {
            return line;
        }
    };
    // "listening" comes first: no dialler runs before it is logged.
    until("listening");
    until("not dialling this node's own address");
    send_signal(node.id(), "-TERM");
    // A node that dialled itself would count two peers (its dialled and accepted ends).
    assert!(until("counters").contains("peers=0"));
    assert!(node.wait().expect("exit status").success());
}

/// Thirty peers connecting in the same second pass the cap on connection log lines
/// (20 a second), as a node starting among a few dozen peers does: the summary of the
/// suppressed lines, all informational, is informational too, not a warning.
#[test]
fn many_peers_connecting_at_once_are_summarised_without_a_warning() {
    let (mut node, stderr) = start_with_default_flags(&["127.0.0.1:0"]);
    let addr = listening_address(&stderr.recv_timeout(WAIT).expect("a first log line"));
    let peers: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let mut connected = 0;
    while connected < 20 {
        let line = stderr.recv_timeout(WAIT).expect("a log line");
        assert!(!line.contains("WARN"), "{line}");
        connected += usize::from(line.contains(": connected"));
    }
    // A frame now and then, each an event, until one comes in the next second.
    let started = std::time::Instant::now();
    let summary = 'found: loop {
        assert!(
            started.elapsed() < WAIT,
            "no summary of the suppressed lines"
        );
        let frame = [
            &[0, 0, 0, 8][..],
            &started.elapsed().as_nanos().to_be_bytes()[8..],
        ];
        (&peers[0]).write_all(&frame.concat()).expect("write");
        while let Ok(line) = stderr.recv_timeout(Duration::from_millis(100)) {
            assert!(!line.contains("WARN"), "{line}");
            if line.contains("suppressed") {
                break 'found line;
            }
        }
    };
    assert!(
        summary.contains("INFO") && summary.contains("suppressed=10"),
        "{summary}"
    );
    send_signal(node.id(), "-TERM");
    assert!(node.wait().expect("exit status").success());
}
