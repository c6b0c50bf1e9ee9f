//! A TCP proxy in front of a broker's PLAINTEXT listener that counts the Kafka requests passing
//! through it by API key: what the broker received, to hold lagwatch's own request count to.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Kafka API keys of the requests tests count.
pub const FIND_COORDINATOR: i16 = 10;
pub const OFFSET_FETCH: i16 = 9;
pub const LIST_GROUPS: i16 = 16;
pub const DESCRIBE_GROUPS: i16 = 15;
pub const CONSUMER_GROUP_DESCRIBE: i16 = 69;

/// Requests seen, by API key, over every connection so far.
#[derive(Debug, Clone, Default)]
pub struct RequestCounts(Arc<Mutex<BTreeMap<i16, u64>>>);

impl RequestCounts {
    pub fn snapshot(&self) -> BTreeMap<i16, u64> {
        self.0.lock().expect("counts").clone()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// Listens on `listen` and forwards every connection to `target`, counting request frames
/// (4-byte size, then the header whose first field is the API key) on the way in. Runs for the
/// life of the process.
pub fn start(listen: u16, target: u16, counts: RequestCounts) {
    let listener = TcpListener::bind(("127.0.0.1", listen)).expect("proxy port");
    let seen = counts;
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(broker) = TcpStream::connect(("127.0.0.1", target)) else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            let (Ok(client_out), Ok(broker_in)) = (client.try_clone(), broker.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || copy(broker_in, client_out));
            let seen = seen.clone();
            std::thread::spawn(move || requests(client, broker, &seen));
        }
    });
}

/// Answers, unchanged.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
}

/// Requests, frame by frame, each counted before it is forwarded.
fn requests(mut from: TcpStream, mut to: TcpStream, seen: &RequestCounts) {
    loop {
        let mut size = [0u8; 4];
        if from.read_exact(&mut size).is_err() {
            break;
        }
        let Ok(len) = usize::try_from(i32::from_be_bytes(size)) else {
            break;
        };
        let mut frame = vec![0u8; len];
        if len < 2 || from.read_exact(&mut frame).is_err() {
            break;
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        *seen.0.lock().expect("counts").entry(key).or_insert(0) += 1;
        if to.write_all(&size).is_err() || to.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
