//! A TCP proxy in front of a broker's PLAINTEXT listener that counts the Kafka requests passing
//! through it by API key, with the bytes of each request and of its response: what the broker
//! received and sent, to hold lagwatch's own request count to.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Kafka API keys of the requests tests count.
pub const FIND_COORDINATOR: i16 = 10;
pub const OFFSET_FETCH: i16 = 9;
pub const LIST_GROUPS: i16 = 16;
pub const DESCRIBE_GROUPS: i16 = 15;
pub const CONSUMER_GROUP_DESCRIBE: i16 = 69;

/// What passed through for one API key: requests, and bytes each way (frames with their 4-byte
/// size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub requests: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// Traffic seen, by API key, over every connection so far.
#[derive(Debug, Clone, Default)]
pub struct RequestCounts(Arc<Mutex<BTreeMap<i16, Traffic>>>);

impl RequestCounts {
    /// Requests by API key.
    pub fn snapshot(&self) -> BTreeMap<i16, u64> {
        self.traffic()
            .into_iter()
            .map(|(key, t)| (key, t.requests))
            .collect()
    }

    /// Requests and bytes by API key.
    pub fn traffic(&self) -> BTreeMap<i16, Traffic> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    fn add(&self, key: i16, update: impl FnOnce(&mut Traffic)) {
        update(
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default(),
        );
    }
}

/// The API key of each request of one connection still waiting for its response, by
/// correlation id.
type Pending = Arc<Mutex<HashMap<i32, i16>>>;

/// Listens on `listen` and forwards every connection to `target`, counting request frames
/// (4-byte size, then the header: API key, version, correlation id) on the way in and response
/// frames (4-byte size, then the correlation id) on the way out. Runs for the life of the
/// process.
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
            let pending = Pending::default();
            let (seen_out, pending_out) = (seen.clone(), pending.clone());
            std::thread::spawn(move || responses(broker_in, client_out, &seen_out, &pending_out));
            let seen = seen.clone();
            std::thread::spawn(move || requests(client, broker, &seen, &pending));
        }
    });
}

/// Frame boundaries in a byte stream read in arbitrary chunks: hands each frame's size (with
/// its 4-byte size field) and its first body bytes to `on_frame` once they have arrived.
struct Frames<const HEAD: usize> {
    head: [u8; HEAD],
    have: usize,
    /// Bytes of the current frame's body still to pass, once its head is complete.
    rest: usize,
}

impl<const HEAD: usize> Frames<HEAD> {
    fn new() -> Self {
        Frames {
            head: [0; HEAD],
            have: 0,
            rest: 0,
        }
    }

    fn feed(&mut self, mut data: &[u8], on_frame: &mut impl FnMut(u64, &[u8; HEAD])) {
        while !data.is_empty() {
            if self.rest > 0 {
                let n = self.rest.min(data.len());
                self.rest -= n;
                data = &data[n..];
                continue;
            }
            let n = (HEAD - self.have).min(data.len());
            self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == HEAD {
                let size =
                    i32::from_be_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]);
                let size = usize::try_from(size).unwrap_or(0);
                on_frame(4 + size as u64, &self.head);
                self.rest = (4 + size).saturating_sub(HEAD);
                self.have = 0;
            }
        }
    }
}

/// Copies `from` to `to` as it arrives, handing each frame to `on_frame` before its first
/// bytes are forwarded.
fn forward<const HEAD: usize>(
    mut from: TcpStream,
    mut to: TcpStream,
    mut on_frame: impl FnMut(u64, &[u8; HEAD]),
) {
    let mut frames = Frames::<HEAD>::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        frames.feed(&buf[..n], &mut on_frame);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// Requests: size, API key, version, correlation id.
fn requests(from: TcpStream, to: TcpStream, seen: &RequestCounts, pending: &Pending) {
    forward::<12>(from, to, |bytes, head| {
        let key = i16::from_be_bytes([head[4], head[5]]);
        let correlation = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(correlation, key);
        seen.add(key, |t| {
            t.requests += 1;
            t.request_bytes += bytes;
        });
    });
}

/// Responses: size, correlation id; each counted under its request's API key.
fn responses(from: TcpStream, to: TcpStream, seen: &RequestCounts, pending: &Pending) {
    forward::<8>(from, to, |bytes, head| {
        let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let key = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&correlation);
        // A response to no request seen (never from a broker) counts under key -1.
        seen.add(key.unwrap_or(-1), |t| t.response_bytes += bytes);
    });
}
