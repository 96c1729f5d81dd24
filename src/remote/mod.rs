//! A remote cache tier: the store's [`Cache`] on an S3 bucket or on a
//! REAPI v2 server ([`reapi`]), shared by every machine that names it
//! (`--remote s3://bucket/prefix`, `--remote grpc://host:port[/instance]`,
//! or `ADMF_REMOTE`).
//!
//! A build looks a key up in the local store first and then here; a
//! remote hit copies the entry's blobs and then its action into the local
//! store, checking every blob's blake3 as it arrives, and is settled as a
//! local hit. Once a commit is visible in the store (the commit group it
//! belongs to is flushed) the entry is published in the background:
//! its blobs first, then its action, each with a conditional create
//! (`If-None-Match: *`), so a reader never finds an action whose blobs are
//! missing, a writer killed halfway leaves at most unreferenced blobs, and
//! two writers of one key cannot tear it (the second finds it present).
//!
//! A group of ready nodes is read from one pack when an earlier build of
//! the same group published it ([`pack`]), else entry by entry.
//!
//! A remote that cannot be reached, or refuses a read or a write, is
//! dropped for the rest of the build with one warning: the build goes on
//! with the local store only and never fails because of the remote. A
//! call that fails on a remote that answered earlier in the build is
//! tried again a few times first.
//!
//! On S3, the layout under the prefix: `cas/<blake3>` holds a blob's bytes,
//! `ac/<key>` an action result (the manifest as JSON, as `admf` keys it),
//! `pack/<group>` a group's pack.
//! What is shared is exactly what the keys cover (mode, version, config,
//! input digests, upstream digests); credentials and the endpoint come
//! from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`), never from a workflow.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};

use crate::store::{Cache, Manifest, Store, copy_action};

pub mod pack;
pub mod reapi;

pub use reapi::ReapiCache;

use pack::Pack;

/// A remote tier as a build drives it, on top of the [`Cache`] calls.
pub trait RemoteCache: Cache {
    /// Copies the entry `key` into `local`: its blobs the local store
    /// lacks, each checked, then its action. Whether the remote had a
    /// sound entry.
    fn fetch_into(&self, key: &str, local: &Store) -> io::Result<bool>;
    /// [`RemoteCache::fetch_into`] for each of `keys`, as many at once as
    /// the remote allows; whether each entry was copied, in order.
    fn fetch_many(&self, keys: &[String], local: &Store) -> io::Result<Vec<bool>>;
    /// Publishes the entry `key` of `local` unless the remote has it
    /// already; whether it did.
    fn publish_from(&self, local: &Store, key: &str) -> io::Result<bool>;
    /// Whether the remote holds an action result for `key`.
    fn has_action(&self, key: &str) -> io::Result<bool>;
    /// For each of `keys`, in order, the manifest of its entry when the
    /// remote holds it whole (a sound manifest of that key and every blob
    /// it names), else `None`: what a build would find a remote hit.
    /// Nothing is copied; as many keys are asked at once as the remote
    /// allows (`admf cache ls --remote`).
    fn held(&self, keys: &[String]) -> io::Result<Vec<Option<Manifest>>>;
    /// Records a workflow's ref set (node, key) under `name`, replacing
    /// the one there (`admf cache push WF`).
    fn put_ref_set(&self, name: &str, refs: &[(String, String)]) -> io::Result<()>;
    /// The ref set recorded under `name`, `None` when there is none.
    fn get_ref_set(&self, name: &str) -> io::Result<Option<Vec<(String, String)>>>;
    /// Copies the entries `wanted` from the pack of the group `group`
    /// ([`pack`]) into `local`: whether each was copied, in order, or
    /// `None` when the remote holds no sound pack of that group.
    fn fetch_pack(
        &self,
        _group: &str,
        _wanted: &[String],
        _local: &Store,
    ) -> io::Result<Option<Vec<bool>>> {
        Ok(None)
    }
    /// Publishes `pack` as the pack of the group `group` unless the
    /// remote holds one; whether it did.
    fn publish_pack(&self, _group: &str, _pack: Vec<u8>) -> io::Result<bool> {
        Ok(false)
    }
}

/// The remote tier a URL names: `s3://bucket[/prefix]` or
/// `grpc://host:port[/instance]` (a REAPI v2 server).
pub fn open_remote(url: &str) -> io::Result<Arc<dyn RemoteCache>> {
    if url.starts_with("s3://") {
        Ok(Arc::new(S3Cache::open(url)?))
    } else if url.starts_with("grpc://") || url.starts_with("grpcs://") {
        Ok(Arc::new(ReapiCache::open(url)?))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{url}` is not a remote cache URL (want s3://bucket/prefix or grpc[s]://host:port[/instance])"
            ),
        ))
    }
}

/// A cache tier on S3 (or any S3-compatible server).
pub struct S3Cache {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: tokio::runtime::Runtime,
}

impl S3Cache {
    /// The tier at `url` (`s3://bucket[/prefix]`), configured from the
    /// `AWS_*` environment. Nothing is contacted yet.
    pub fn open(url: &str) -> io::Result<S3Cache> {
        S3Cache::open_with(url, std::env::vars())
    }

    /// The tier at `url`, configured from the `AWS_*` variables among `vars`.
    pub fn open_with(
        url: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> io::Result<S3Cache> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{url}` is not a remote cache URL (want s3://bucket/prefix)"),
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{url}` names no bucket"),
            ));
        }
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        let mut endpoint = None;
        let mut region = false;
        for (name, value) in vars {
            match name.as_str() {
                "AWS_ENDPOINT_URL" | "AWS_ENDPOINT" => endpoint = Some(value),
                "AWS_DEFAULT_REGION" | "AWS_REGION" => {
                    region = true;
                    builder = builder.with_region(value);
                }
                _ if name.starts_with("AWS_") => {
                    if let Ok(key) = name.to_ascii_lowercase().parse() {
                        builder = builder.with_config(key, value);
                    }
                }
                _ => {}
            }
        }
        let allow_http = endpoint.as_ref().is_some_and(|e| e.starts_with("http://"));
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if !region {
            builder = builder.with_region("us-east-1");
        }
        // A remote that does not answer must cost a build seconds, not minutes.
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(30))
            .with_allow_http(allow_http);
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        let store = builder
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(S3Cache {
            store: Arc::new(store),
            prefix: ObjectPath::from(prefix.trim_matches('/')),
            runtime,
        })
    }

    fn blob_path(&self, digest: &str) -> ObjectPath {
        self.prefix.child("cas").child(digest)
    }

    fn action_path(&self, key: &str) -> ObjectPath {
        self.prefix.child("ac").child(key)
    }

    fn pack_path(&self, group: &str) -> ObjectPath {
        self.prefix.child("pack").child(group)
    }

    /// A workflow's ref set, named by the blake3 of its name (a path).
    fn ref_set_path(&self, name: &str) -> ObjectPath {
        let id = blake3::hash(name.as_bytes()).to_hex();
        self.prefix.child("refs").child(id.as_str())
    }

    /// Writes `bytes` at `path` unless something is there already (then
    /// it holds the same content: paths are named by content, by key or
    /// by group); whether it wrote them.
    async fn create(&self, path: &ObjectPath, bytes: Vec<u8>) -> io::Result<bool> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(to_io(e)),
        }
    }

    async fn read(&self, path: &ObjectPath) -> io::Result<Option<Vec<u8>>> {
        match self.store.get(path).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(to_io)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    async fn read_blob(&self, digest: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(bytes) = self.read(&self.blob_path(digest)).await? else {
            return Ok(None);
        };
        if blake3::hash(&bytes).to_hex().as_str() != digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("remote blob {digest} does not match its digest"),
            ));
        }
        Ok(Some(bytes))
    }

    async fn read_manifest(&self, key: &str) -> io::Result<Option<Manifest>> {
        let Some(bytes) = self.read(&self.action_path(key)).await? else {
            return Ok(None);
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if manifest.key != key {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("remote action {key} holds the manifest of {}", manifest.key),
            ));
        }
        Ok(Some(manifest))
    }

    /// Copies the entries `keys` into `local`: every manifest read first,
    /// then each blob they name that the local store lacks, read once
    /// however many entries name it and checked against its digest; then
    /// the blobs and actions are stored, an action only once all its blobs
    /// are. Whether each entry was copied, in order. [`CONCURRENT_READS`]
    /// GETs are in flight at a time, so that a group of hits costs a few
    /// round trips rather than one per entry.
    async fn fetch_entries(&self, keys: &[String], local: &Store) -> io::Result<Vec<bool>> {
        use futures::StreamExt;
        let manifests: Vec<Option<Manifest>> = futures::stream::iter(keys)
            .map(|key| self.read_manifest(key))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let mut wanted: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for manifest in manifests.iter().flatten() {
            for digest in digests(manifest) {
                if seen.insert(digest) && !local.has_blob(digest)? {
                    wanted.push(digest);
                }
            }
        }
        let blobs: Vec<Option<Vec<u8>>> = futures::stream::iter(&wanted)
            .map(|digest| self.read_blob(digest))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        // Published actions name only published blobs; one removed since
        // makes the entries naming it misses, not an error.
        let mut absent = HashSet::new();
        for (digest, bytes) in wanted.iter().zip(&blobs) {
            match bytes {
                Some(bytes) => {
                    Cache::put_blob(local, bytes)?;
                }
                None => {
                    absent.insert(*digest);
                }
            }
        }
        let mut copied = Vec::with_capacity(keys.len());
        for manifest in &manifests {
            let whole = manifest
                .as_ref()
                .filter(|m| digests(m).all(|d| !absent.contains(d)));
            if let Some(manifest) = whole {
                Cache::put_action(local, manifest)?;
            }
            copied.push(whole.is_some());
        }
        Ok(copied)
    }

    /// The manifest of `key` when its action and every blob it names are
    /// there. A manifest that is not admf's, or not of this key, is an
    /// entry not held, as a build would treat it.
    async fn held_one(&self, key: &str) -> io::Result<Option<Manifest>> {
        let manifest = match self.read_manifest(key).await {
            Ok(Some(manifest)) => manifest,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut blobs: Vec<&str> = digests(&manifest).collect();
        blobs.sort_unstable();
        blobs.dedup();
        for digest in blobs {
            match self.store.head(&self.blob_path(digest)).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(to_io(e)),
            }
        }
        Ok(Some(manifest))
    }
}

/// How many entries `held` asks about at once.
const CONCURRENT_FETCHES: usize = 8;

/// How many GETs one fetch of several entries has in flight.
const CONCURRENT_READS: usize = 32;

impl RemoteCache for S3Cache {
    fn fetch_into(&self, key: &str, local: &Store) -> io::Result<bool> {
        Ok(self.fetch_many(&[key.to_string()], local)?[0])
    }

    fn fetch_many(&self, keys: &[String], local: &Store) -> io::Result<Vec<bool>> {
        self.runtime.block_on(self.fetch_entries(keys, local))
    }

    fn publish_from(&self, local: &Store, key: &str) -> io::Result<bool> {
        // A key already there is left alone: an entry is published once,
        // by whichever writer comes first.
        if self.has_action(key)? {
            return Ok(false);
        }
        copy_action(local, self, key)
    }

    fn has_action(&self, key: &str) -> io::Result<bool> {
        self.runtime.block_on(async {
            match self.store.head(&self.action_path(key)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(to_io(e)),
            }
        })
    }

    /// Asks [`CONCURRENT_FETCHES`] keys at a time: a GET of the action
    /// and a HEAD of each of its blobs.
    fn held(&self, keys: &[String]) -> io::Result<Vec<Option<Manifest>>> {
        use futures::StreamExt;
        self.runtime.block_on(
            futures::stream::iter(keys)
                .map(|key| self.held_one(key))
                .buffered(CONCURRENT_FETCHES)
                .try_collect(),
        )
    }

    fn put_ref_set(&self, name: &str, refs: &[(String, String)]) -> io::Result<()> {
        let text = serde_json::to_vec(refs).map_err(io::Error::other)?;
        self.runtime.block_on(async {
            self.store
                .put(&self.ref_set_path(name), PutPayload::from(text))
                .await
                .map_err(to_io)?;
            Ok(())
        })
    }

    fn get_ref_set(&self, name: &str) -> io::Result<Option<Vec<(String, String)>>> {
        let Some(bytes) = self.runtime.block_on(self.read(&self.ref_set_path(name)))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// One GET of the pack, then one of each large blob the wanted
    /// entries name and the local store lacks.
    fn fetch_pack(
        &self,
        group: &str,
        wanted: &[String],
        local: &Store,
    ) -> io::Result<Option<Vec<bool>>> {
        use futures::StreamExt;
        self.runtime.block_on(async {
            let Some(bytes) = self.read(&self.pack_path(group)).await? else {
                return Ok(None);
            };
            // A pack that is not sound is no pack: the entries are read
            // one by one.
            let Ok(pack) = Pack::decode(bytes) else {
                return Ok(None);
            };
            let needed = pack.outside_needed(wanted, local)?;
            let blobs: Vec<Option<Vec<u8>>> = futures::stream::iter(&needed)
                .map(|o| self.read_blob(&o.blake3))
                .buffered(CONCURRENT_READS)
                .try_collect()
                .await?;
            let fetched = needed
                .into_iter()
                .zip(blobs)
                .filter_map(|(o, bytes)| Some((o.blake3, bytes?)))
                .collect();
            pack.install(wanted, local, &fetched).map(Some)
        })
    }

    fn publish_pack(&self, group: &str, pack: Vec<u8>) -> io::Result<bool> {
        self.runtime
            .block_on(self.create(&self.pack_path(group), pack))
    }
}

pub(crate) fn digests(manifest: &Manifest) -> impl Iterator<Item = &str> {
    manifest
        .outputs
        .values()
        .map(|o| o.blake3.as_str())
        .chain([manifest.log_digest.as_str()])
}

/// The error as io sees it, its kind telling a refusal (which no retry
/// cures) from a failure that may pass.
fn to_io(e: object_store::Error) -> io::Error {
    use object_store::Error as E;
    let kind = match &e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        E::NotSupported { .. } | E::NotImplemented => io::ErrorKind::Unsupported,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => io::ErrorKind::InvalidInput,
        // A read treats absence as a miss before this; a write answered
        // with it names a bucket that is not there.
        E::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

impl Cache for S3Cache {
    fn has_blob(&self, digest: &str) -> io::Result<bool> {
        self.runtime.block_on(async {
            match self.store.head(&self.blob_path(digest)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(to_io(e)),
            }
        })
    }

    fn get_blob(&self, digest: &str) -> io::Result<Option<Vec<u8>>> {
        self.runtime.block_on(self.read_blob(digest))
    }

    fn put_blob(&self, bytes: &[u8]) -> io::Result<String> {
        let digest = blake3::hash(bytes).to_hex().to_string();
        self.runtime
            .block_on(self.create(&self.blob_path(&digest), bytes.to_vec()))?;
        Ok(digest)
    }

    fn get_action(&self, key: &str) -> io::Result<Option<Manifest>> {
        let Some(manifest) = self.runtime.block_on(self.read_manifest(key))? else {
            return Ok(None);
        };
        for digest in digests(&manifest) {
            if !self.has_blob(digest)? {
                return Ok(None);
            }
        }
        Ok(Some(manifest))
    }

    fn put_action(&self, result: &Manifest) -> io::Result<()> {
        for digest in digests(result) {
            if !self.has_blob(digest)? {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "action {} names blob {digest}, which is not stored",
                        result.key
                    ),
                ));
            }
        }
        let text = serde_json::to_vec(result).map_err(io::Error::other)?;
        self.runtime
            .block_on(self.create(&self.action_path(&result.key), text))?;
        Ok(())
    }

    fn list_actions(&self) -> io::Result<Vec<String>> {
        self.runtime.block_on(async {
            let prefix = self.prefix.child("ac");
            let items: Vec<_> = self
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(to_io)?;
            Ok(items
                .into_iter()
                .filter_map(|m| m.location.filename().map(str::to_string))
                .collect())
        })
    }
}

/// The remote tier as one build uses it: lookups after the local store,
/// publishing after commits (in the background), and the rule that a
/// failing remote is dropped with one warning.
pub struct RemoteTier {
    url: String,
    cache: Arc<dyn RemoteCache>,
    local: Store,
    health: Arc<Health>,
    hits: AtomicUsize,
    /// The keys this build copied from the remote: the remote holds them,
    /// so they are not offered back to it.
    fetched: Mutex<HashSet<String>>,
    /// The groups this build met that the remote held no pack of: each
    /// gets one at the end of the build when the local store holds it
    /// whole.
    unpacked: Mutex<Vec<(String, Vec<String>)>>,
    published: Arc<AtomicUsize>,
    queue: Mutex<Option<Sender<String>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
}

/// Whether a remote is usable: it is dropped after one failure when it
/// never answered (a remote that is down costs one short wait), and after
/// [`TRANSIENT_RETRIES`] more tries of the same call once it has (a
/// server that answered a moment ago and fails now is most likely busy:
/// a reset connection, a timeout under load).
#[derive(Default)]
struct Health {
    down: AtomicBool,
    answered: AtomicBool,
}

/// How many times a call that failed is tried again, on a remote that has
/// answered this build, before the remote is dropped.
const TRANSIENT_RETRIES: u32 = 3;
/// The pause before the first try again; each next one waits four times
/// longer (0.1 s, 0.4 s, 1.6 s).
const FIRST_PAUSE: Duration = Duration::from_millis(100);

impl Health {
    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Runs `call`, again after a pause while it fails in a way a retry
    /// may cure; drops the remote (one warning, `what` naming the call)
    /// when it still fails. `None` when it failed.
    fn call<T>(&self, url: &str, what: &str, mut call: impl FnMut() -> io::Result<T>) -> Option<T> {
        let mut pause = FIRST_PAUSE;
        let mut tries = 0;
        loop {
            if self.is_down() {
                return None;
            }
            match call() {
                Ok(value) => {
                    self.answered.store(true, Ordering::SeqCst);
                    return Some(value);
                }
                Err(e)
                    if tries < TRANSIENT_RETRIES
                        && self.answered.load(Ordering::SeqCst)
                        && transient(&e) =>
                {
                    tries += 1;
                    std::thread::sleep(pause);
                    pause *= 4;
                }
                Err(e) => {
                    warn_once(&self.down, url, what, &e);
                    return None;
                }
            }
        }
    }
}

/// Whether a retry may cure `error`: not a refusal (credentials, a read
/// only server, a bucket that is not there, a bad request), nor data
/// that is not admf's.
fn transient(error: &io::Error) -> bool {
    !matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::NotFound
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::Unsupported
    )
}

/// What a build did with its remote, for the closing line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteSummary {
    pub hits: usize,
    pub published: usize,
    pub down: bool,
}

impl RemoteTier {
    /// The tier at `url`, publishing what is committed into `local`.
    pub fn open(url: &str, local: Store) -> io::Result<RemoteTier> {
        RemoteTier::over(url, open_remote(url)?, local)
    }

    /// The tier over `cache`, which `url` names in warnings.
    fn over(url: &str, cache: Arc<dyn RemoteCache>, local: Store) -> io::Result<RemoteTier> {
        let health = Arc::new(Health::default());
        let published = Arc::new(AtomicUsize::new(0));
        let (queue, keys) = channel::<String>();
        let uploader = {
            let cache = cache.clone();
            let health = health.clone();
            let published = published.clone();
            let url = url.to_string();
            let local = local.clone();
            std::thread::Builder::new()
                .name("admf-remote".into())
                .spawn(move || {
                    for key in keys {
                        let published_now = health
                            .call(&url, "refused a write", || cache.publish_from(&local, &key));
                        if published_now == Some(true) {
                            published.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })?
        };
        Ok(RemoteTier {
            url: url.to_string(),
            cache,
            local,
            health,
            hits: AtomicUsize::new(0),
            fetched: Mutex::new(HashSet::new()),
            unpacked: Mutex::new(Vec::new()),
            published,
            queue: Mutex::new(Some(queue)),
            uploader: Mutex::new(Some(uploader)),
        })
    }

    /// Whether the remote was dropped for the rest of the build.
    pub fn is_down(&self) -> bool {
        self.health.is_down()
    }

    /// Copies the entries `keys` the remote holds into `local`, as a group
    /// (concurrent reads on S3, batched reads on REAPI).
    pub fn fetch_many(&self, keys: &[String], local: &Store) {
        if keys.is_empty() {
            return;
        }
        let copied = self.health.call(&self.url, "cannot be read", || {
            self.cache.fetch_many(keys, local)
        });
        if let Some(copied) = copied {
            let copied = keys.iter().zip(copied).filter(|(_, c)| *c).map(|(k, _)| k);
            self.note_fetched(copied);
        }
    }

    /// Copies the entries `wanted` the remote holds into `local`, where
    /// `wanted` are those of the ready group `group` (every ready node's
    /// key) that the local store lacks: from the group's pack in one read
    /// when the remote holds one, else entry by entry ([`pack`]).
    pub fn fetch_group(&self, group: &[String], wanted: &[String], local: &Store) {
        let id = pack::group_id(group);
        let from_pack = self.health.call(&self.url, "cannot be read", || {
            self.cache.fetch_pack(&id, wanted, local)
        });
        let rest: Vec<String> = match from_pack {
            None => return,
            Some(Some(copied)) => {
                let (hits, misses): (Vec<_>, Vec<_>) = wanted.iter().zip(copied).partition(|w| w.1);
                self.note_fetched(hits.into_iter().map(|(k, _)| k));
                misses.into_iter().map(|(k, _)| k.clone()).collect()
            }
            Some(None) => {
                self.unpacked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((id, group.to_vec()));
                wanted.to_vec()
            }
        };
        self.fetch_many(&rest, local);
    }

    fn note_fetched<'a>(&self, keys: impl Iterator<Item = &'a String>) {
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if fetched.insert(key.clone()) {
                self.hits.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Copies the entry `key` from the remote into `local` when the remote
    /// has it; whether it did.
    pub fn fetch(&self, key: &str, local: &Store) -> bool {
        let found = self.health.call(&self.url, "cannot be read", || {
            self.cache.fetch_into(key, local)
        });
        if found == Some(true) {
            self.note_fetched(std::iter::once(&key.to_string()));
        }
        found == Some(true)
    }

    /// Publishes the stored entry `key` in the background, unless the
    /// remote has it: after a commit, and after a local hit (an entry
    /// committed by a build killed before it could publish). An entry
    /// this build copied from the remote is not offered back.
    pub fn publish(&self, key: &str) {
        if self
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
        {
            return;
        }
        if let Some(queue) = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = queue.send(key.to_string());
        }
    }

    /// Waits until every queued entry is published (or the remote
    /// dropped), then publishes the pack of each group this build met
    /// without one and now holds whole: its entries are on the remote by
    /// then, so the blobs a pack leaves outside are too.
    pub fn finish(&self) -> RemoteSummary {
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(uploader) = self
            .uploader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = uploader.join();
        }
        let unpacked =
            std::mem::take(&mut *self.unpacked.lock().unwrap_or_else(|e| e.into_inner()));
        for (id, group) in unpacked {
            if self.is_down() {
                break;
            }
            // A store that cannot be read here cannot make the pack; the
            // entries are on the remote one by one all the same.
            let Ok(Some(bytes)) = pack::encode(&self.local, &group) else {
                continue;
            };
            self.health.call(&self.url, "refused a write", || {
                self.cache.publish_pack(&id, bytes.clone())
            });
        }
        RemoteSummary {
            hits: self.hits.load(Ordering::SeqCst),
            published: self.published.load(Ordering::SeqCst),
            down: self.is_down(),
        }
    }
}

fn warn_once(down: &AtomicBool, url: &str, what: &str, error: &io::Error) {
    if !down.swap(true, Ordering::SeqCst) {
        crate::errln!(
            "admf: warning: the remote cache {url} {what} ({error}); this build goes on with the local cache only"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_name_a_bucket() {
        assert!(S3Cache::open("http://example/x").is_err());
        assert!(S3Cache::open("s3://").is_err());
        let cache = S3Cache::open("s3://bucket/team/admf/").unwrap();
        assert_eq!(cache.blob_path("ab").as_ref(), "team/admf/cas/ab");
        assert_eq!(cache.action_path("cd").as_ref(), "team/admf/ac/cd");
        let cache = S3Cache::open("s3://bucket").unwrap();
        assert_eq!(cache.action_path("cd").as_ref(), "ac/cd");
    }

    /// A remote holding the keys `held`, counting the entries offered to
    /// it; its reads fail with the errors `failures` holds, one per read,
    /// before they answer; it keeps the packs published to it.
    #[derive(Default)]
    struct Counting {
        held: Vec<String>,
        offered: Mutex<Vec<String>>,
        failures: Mutex<Vec<io::ErrorKind>>,
        reads: AtomicUsize,
        packs: Mutex<Vec<(String, Vec<u8>)>>,
    }

    impl Counting {
        fn read(&self) -> io::Result<()> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            match self.failures.lock().unwrap().pop() {
                Some(kind) => Err(io::Error::new(kind, "connection reset by peer")),
                None => Ok(()),
            }
        }
    }

    impl Cache for Counting {
        fn has_blob(&self, _: &str) -> io::Result<bool> {
            Ok(false)
        }
        fn get_blob(&self, _: &str) -> io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn put_blob(&self, bytes: &[u8]) -> io::Result<String> {
            Ok(blake3::hash(bytes).to_hex().to_string())
        }
        fn get_action(&self, _: &str) -> io::Result<Option<Manifest>> {
            Ok(None)
        }
        fn put_action(&self, _: &Manifest) -> io::Result<()> {
            Ok(())
        }
        fn list_actions(&self) -> io::Result<Vec<String>> {
            Ok(self.held.clone())
        }
    }

    impl RemoteCache for Counting {
        fn fetch_into(&self, key: &str, _: &Store) -> io::Result<bool> {
            self.read()?;
            Ok(self.held.iter().any(|k| k == key))
        }
        fn fetch_many(&self, keys: &[String], local: &Store) -> io::Result<Vec<bool>> {
            keys.iter().map(|k| self.fetch_into(k, local)).collect()
        }
        fn publish_from(&self, _: &Store, key: &str) -> io::Result<bool> {
            self.offered.lock().unwrap().push(key.to_string());
            Ok(true)
        }
        fn has_action(&self, key: &str) -> io::Result<bool> {
            Ok(self.held.iter().any(|k| k == key))
        }
        fn held(&self, keys: &[String]) -> io::Result<Vec<Option<Manifest>>> {
            Ok(vec![None; keys.len()])
        }
        fn put_ref_set(&self, _: &str, _: &[(String, String)]) -> io::Result<()> {
            Ok(())
        }
        fn get_ref_set(&self, _: &str) -> io::Result<Option<Vec<(String, String)>>> {
            Ok(None)
        }
        fn fetch_pack(
            &self,
            group: &str,
            wanted: &[String],
            local: &Store,
        ) -> io::Result<Option<Vec<bool>>> {
            self.read()?;
            let packs = self.packs.lock().unwrap();
            let Some((_, bytes)) = packs.iter().find(|(g, _)| g == group) else {
                return Ok(None);
            };
            let pack = Pack::decode(bytes.clone())?;
            pack.install(wanted, local, &Default::default()).map(Some)
        }
        fn publish_pack(&self, group: &str, pack: Vec<u8>) -> io::Result<bool> {
            self.packs.lock().unwrap().push((group.to_string(), pack));
            Ok(true)
        }
    }

    #[test]
    fn entries_fetched_from_the_remote_are_not_offered_back() {
        let dir = tempfile::tempdir().unwrap();
        let local = Store::open(&dir.path().join("cache")).unwrap();
        let remote = Arc::new(Counting {
            held: vec!["a".into(), "b".into(), "c".into()],
            ..Counting::default()
        });
        let tier = RemoteTier::over("fake://", remote.clone(), local.clone()).unwrap();
        let group = ["a".to_string(), "b".to_string(), "x".to_string()];
        tier.fetch_many(&group, &local);
        assert!(tier.fetch("c", &local));
        assert!(!tier.fetch("y", &local));
        // Hits of this build (group and single), a miss, and an entry
        // committed locally: only the last two are the remote's to get.
        for key in ["a", "b", "c", "x", "z"] {
            tier.publish(key);
        }
        let summary = tier.finish();
        assert_eq!(*remote.offered.lock().unwrap(), ["x", "z"]);
        assert_eq!(summary.hits, 3);
        assert_eq!(summary.published, 2);
    }

    #[test]
    fn a_remote_that_answered_is_tried_again_after_a_transient_failure() {
        let dir = tempfile::tempdir().unwrap();
        let local = Store::open(&dir.path().join("cache")).unwrap();
        let remote = Arc::new(Counting {
            held: vec!["a".into(), "b".into()],
            ..Counting::default()
        });
        let tier = RemoteTier::over("fake://", remote.clone(), local.clone()).unwrap();
        assert!(tier.fetch("a", &local));
        // Two resets in a row (popped last first), then the answer.
        *remote.failures.lock().unwrap() =
            vec![io::ErrorKind::ConnectionReset, io::ErrorKind::TimedOut];
        assert!(tier.fetch("b", &local));
        assert!(!tier.is_down());
        assert_eq!(remote.reads.load(Ordering::SeqCst), 4);
        assert_eq!(tier.finish().hits, 2);
    }

    #[test]
    fn a_remote_that_keeps_failing_or_refuses_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let local = Store::open(&dir.path().join("cache")).unwrap();
        // Never answered: dropped at the first failure, one wait only.
        let down = Arc::new(Counting::default());
        *down.failures.lock().unwrap() = vec![io::ErrorKind::ConnectionRefused; 10];
        let tier = RemoteTier::over("fake://", down.clone(), local.clone()).unwrap();
        assert!(!tier.fetch("a", &local));
        assert!(tier.is_down());
        assert!(!tier.fetch("a", &local));
        assert_eq!(down.reads.load(Ordering::SeqCst), 1);
        // Answered, then failing on and on: dropped after the retries.
        let flaky = Arc::new(Counting::default());
        let tier = RemoteTier::over("fake://", flaky.clone(), local.clone()).unwrap();
        assert!(!tier.fetch("a", &local));
        *flaky.failures.lock().unwrap() = vec![io::ErrorKind::Other; 10];
        assert!(!tier.fetch("a", &local));
        assert!(tier.is_down());
        assert_eq!(
            flaky.reads.load(Ordering::SeqCst),
            2 + TRANSIENT_RETRIES as usize
        );
        // Answered, then refusing: no retry cures a refusal.
        let refusing = Arc::new(Counting::default());
        let tier = RemoteTier::over("fake://", refusing.clone(), local.clone()).unwrap();
        assert!(!tier.fetch("a", &local));
        *refusing.failures.lock().unwrap() = vec![io::ErrorKind::PermissionDenied];
        assert!(!tier.fetch("a", &local));
        assert!(tier.is_down());
        assert_eq!(refusing.reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_group_met_without_a_pack_gets_one_that_the_next_build_reads() {
        let group = pack::tests::keys(&["a", "b", "c"]);
        let (_source_dir, source) = pack::tests::store_with(&group);
        let remote = Arc::new(Counting::default());
        // The first build meets the group, finds no pack, computes (here:
        // holds) every entry, and publishes the pack at its end.
        let tier = RemoteTier::over("fake://", remote.clone(), source.clone()).unwrap();
        tier.fetch_group(&group, &group, &source);
        tier.finish();
        let packs = remote.packs.lock().unwrap().clone();
        assert_eq!(packs.len(), 1);
        assert_eq!(packs[0].0, pack::group_id(&group));
        // The next build, with an empty store and one entry of the group
        // local already, copies the other two from the pack; the large
        // blob outside the pack is not fetched by this fake, so the entry
        // naming it is looked up on its own, and missed.
        let dir = tempfile::tempdir().unwrap();
        let local = Store::open(&dir.path().join("cache")).unwrap();
        let tier = RemoteTier::over("fake://", remote.clone(), local.clone()).unwrap();
        let wanted = group[..2].to_vec();
        let reads = remote.reads.load(Ordering::SeqCst);
        tier.fetch_group(&group, &wanted, &local);
        assert_eq!(
            Cache::get_action(&local, &group[1]).unwrap(),
            Cache::get_action(&source, &group[1]).unwrap()
        );
        assert!(Cache::get_action(&local, &group[0]).unwrap().is_none());
        // One read of the pack, one lookup of the entry it could not give.
        assert_eq!(remote.reads.load(Ordering::SeqCst), reads + 2);
        let summary = tier.finish();
        assert_eq!(summary.hits, 1);
        // The group had a pack: none is published again.
        assert_eq!(remote.packs.lock().unwrap().len(), 1);
    }
}
