//! A running `admf serve` for the tests that build through it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Project;

/// A running `admf serve` of the project's store, killed when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts the server and waits (at most 20 s) until it listens.
    pub fn start(p: &Project) -> Server {
        let socket = p.path("cache/serve.sock");
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(p.path("cache/builds.sock"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_admf"))
            .args(["serve", "--cache-dir"])
            .arg(p.path("cache"))
            .current_dir(p.dir.path())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn admf serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        // Both sockets: the record's questions and the builds handed over.
        let builds = p.path("cache/builds.sock");
        while std::os::unix::net::UnixStream::connect(&socket).is_err()
            || std::os::unix::net::UnixStream::connect(&builds).is_err()
        {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                panic!("admf serve exited with {status} before listening:\n{stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "admf serve did not listen on {} within 20 s",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills it as `kill -9` would: its socket stays behind.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
