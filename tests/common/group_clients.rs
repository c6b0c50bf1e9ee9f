//! Live members of the Kafka 4 group types that librdkafka cannot join: share-group members
//! (KIP-932) and Kafka Streams applications on the `streams` protocol (KIP-1071). Each is a
//! single-file Java program in `tests/java/`, run with `java File.java` on the installation's
//! `libs/` (the clients and Kafka Streams, resolved by `.ci/install-kafka`), tied to the test
//! process like the nodes. A client leaves its group when dropped (its standard input closes),
//! and is killed if it does not exit within moments.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use super::{installation, java, spawn_tied, KafkaCluster, SEQUENCE};

/// A JVM start plus compiling the source file takes seconds on two busy cores; joining a group
/// and reading a few hundred records a few more.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// One running Java client: its output lines as they come.
pub struct JavaClient {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Its client log (`server.log`) and standard error.
    dir: PathBuf,
}

impl JavaClient {
    fn start(cluster: &KafkaCluster, program: &str, args: &[&str]) -> JavaClient {
        let name = format!(
            "{}-{}",
            program.trim_end_matches(".java"),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = cluster.dir().join("clients").join(&name);
        std::fs::create_dir_all(&dir).expect("client dir");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("client stderr log");
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/java")
            .join(program);
        let mut command = java();
        command
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg(format!("-Dkafka.logs.dir={}", dir.display()))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                cluster.dir().join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(installation().join("libs/*"))
            .arg(source)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = spawn_tied(command).expect("start a Java client (java)");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("client stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        JavaClient {
            name,
            child: Some(child),
            stdin,
            lines,
            dir,
        }
    }

    /// The lines it prints before `last` (which ends the wait); panics with its error log when
    /// it exits or times out first.
    pub fn lines_until(&mut self, last: &str) -> Vec<String> {
        self.lines_through(|line| line == last).0
    }

    /// The lines it prints before the first that `last` accepts, and that line.
    fn lines_through(&mut self, last: impl Fn(&str) -> bool) -> (Vec<String>, String) {
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if last(&line) => return (seen, line),
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "{} did not print what the test waits for within {CLIENT_TIMEOUT:?}; it \
                     printed {seen:?}; stderr: {}",
                    self.name,
                    std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
                ),
            }
        }
    }

    /// Leaves the group and exits (closing standard input), or is killed after 20 s.
    pub fn stop(&mut self) {
        self.stdin = None;
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for JavaClient {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A share-group member started by [`KafkaCluster::share_member`].
pub struct ShareMember {
    pub client: JavaClient,
}

impl ShareMember {
    /// Waits until the member has accepted its quota and committed the acknowledgements;
    /// returns the (partition, offset) of every record it accepted.
    pub fn accepted(&mut self) -> Vec<(i32, i64)> {
        self.client
            .lines_until("done")
            .iter()
            .filter_map(|l| {
                let mut words = l.strip_prefix("accepted ")?.split(' ');
                Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
            })
            .collect()
    }

    /// Makes the member fetch once more and release every record it gets, which makes the
    /// broker write the share partition's state again; returns how many it released.
    pub fn fetch_and_release(&mut self) -> usize {
        use std::io::Write as _;
        let stdin = self.client.stdin.as_mut().expect("member still running");
        writeln!(stdin, "release").expect("write to the member");
        stdin.flush().expect("write to the member");
        let (_, line) = self.client.lines_through(|l| l.starts_with("released "));
        line.trim_start_matches("released ")
            .parse()
            .expect("a count of released records")
    }
}

impl KafkaCluster {
    /// Starts a member of share group `group` reading `topic`, which accepts exactly `quota`
    /// records and then stays in the group without fetching (see `tests/java/ShareWorker.java`).
    /// Records it receives beyond its quota are released to the group's other members.
    pub fn share_member(&self, group: &str, topic: &str, quota: usize) -> ShareMember {
        let bootstrap = self.bootstrap();
        ShareMember {
            client: JavaClient::start(
                self,
                "ShareWorker.java",
                &[&bootstrap, group, topic, &quota.to_string()],
            ),
        }
    }

    /// Starts a Kafka Streams application with application id `group` on the `streams`
    /// protocol, reading `topic` and committing every 100 ms (see `tests/java/StreamsApp.java`),
    /// and returns once it runs.
    pub fn streams_app(&self, group: &str, topic: &str) -> JavaClient {
        let mut client = self.streams_app_starting(group, topic);
        client.lines_until("running");
        client
    }

    /// [`KafkaCluster::streams_app`] without waiting for it to run (it never does while its
    /// source topic is missing).
    pub fn streams_app_starting(&self, group: &str, topic: &str) -> JavaClient {
        let bootstrap = self.bootstrap();
        let state = self.dir().join("clients").join(format!("{group}-state"));
        let state = state.display().to_string();
        JavaClient::start(self, "StreamsApp.java", &[&bootstrap, group, topic, &state])
    }
}
