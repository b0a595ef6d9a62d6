//! One moto server for the whole test binary, on a free port, stopped with it.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ENDPOINT: OnceLock<String> = OnceLock::new();

/// `AWS_ENDPOINT_URL` when set (a moto or LocalStack someone else runs), else a moto
/// server from the repository's `.venv` (scripts/bootstrap.sh installs it), run by
/// scripts/moto_server.py so that its writes are atomic as DynamoDB's are.
pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start(),
    })
}

fn start() -> String {
    let binary = crate::repo_root().join(".venv/bin/python");
    let script = crate::repo_root().join("scripts/moto_server.py");
    if !binary.exists() {
        panic!(
            "moto is not installed ({} is missing): run scripts/bootstrap.sh (or set AWS_ENDPOINT_URL to a running moto)",
            binary.display()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // The child is tied to this thread with PR_SET_PDEATHSIG, so the thread lives as long
    // as the test binary: moto goes when the tests go, however they end.
    std::thread::spawn(move || {
        let mut command = Command::new(&binary);
        command
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stderr = child.stderr.take().unwrap();
        ready_tx.send(()).unwrap();
        // Drain moto's request log so it never blocks on a full pipe.
        for _ in BufReader::new(stderr).lines() {}
        let _ = child.wait();
        loop {
            std::thread::park();
        }
    });
    ready_rx.recv().expect("moto thread started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            panic!("moto did not listen on 127.0.0.1:{port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("http://127.0.0.1:{port}")
}
