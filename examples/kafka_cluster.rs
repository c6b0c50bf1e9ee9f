//! A 1-node Apache Kafka cluster for the demo, on the test cluster library: prints its bootstrap
//! servers once it serves and runs until SIGTERM, SIGINT or the end of stdin, then stops the
//! broker (which also dies with this process however it ends).
//!
//! Run: `cargo run --example kafka_cluster -- [--port 19092]`.

#[path = "../tests/common/kafka_cluster.rs"]
mod kafka_cluster;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kafka_cluster::{ClusterSpec, KafkaCluster};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.iter().position(|a| a == "--port") {
        None => 19092,
        Some(i) => match args.get(i + 1).and_then(|p| p.parse::<u16>().ok()) {
            Some(p) => p,
            None => {
                eprintln!("usage: kafka_cluster [--port PORT]");
                std::process::exit(2);
            }
        },
    };
    let handler = on_signal as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    let cluster = KafkaCluster::start(ClusterSpec {
        first_port: Some(port),
        ..ClusterSpec::default()
    });
    println!("{}", cluster.bootstrap());
    // The end of stdin stops the cluster too: a parent that dies without signalling leaves no
    // broker behind.
    std::thread::spawn(|| {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        STOP.store(true, Ordering::Relaxed);
    });
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(cluster);
}
