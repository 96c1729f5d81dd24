//! A remote cache tier on a REAPI v2 server (`--remote
//! grpc://HOST:PORT[/INSTANCE]`): the cache subset of the Remote Execution
//! API that Bazel, BuildGrid, Buildbarn and bazel-remote speak.
//!
//! admf keys entries and blobs by blake3; these servers address blobs by
//! SHA-256 (what their capabilities list). The tier maps one onto the
//! other:
//!
//! - a blob is stored by its SHA-256 digest (hash and size);
//! - an admf key becomes a REAPI `Action` whose `Command` is
//!   `admf exec-action KEY` with an empty input root; the action digest is
//!   the SHA-256 of that `Action` message, so every client derives the same
//!   one from the key alone;
//! - the `ActionResult` lists the manifest (`admf/manifest.json`) and every
//!   blob the manifest names (`admf/blake3/<blake3>`), each with its
//!   SHA-256 digest. A pull reads the manifest, fetches the blobs by
//!   SHA-256, and checks both the SHA-256 and the blake3 of each before it
//!   rebuilds the local entry. A blob that is missing or does not match is
//!   a miss, never a wrong result.
//!
//! Publishing uploads the blobs the server lacks (`FindMissingBlobs`, then
//! `BatchUpdateBlobs`, or ByteStream `Write` for a blob over the server's
//! batch limit), then the `Command` and `Action`, and last the
//! `ActionResult`, so a reader never finds a result whose blobs are not
//! there yet.
//!
//! `grpcs://` speaks TLS (rustls), trusting the system's roots or, when
//! `ADMF_REMOTE_CA` names a PEM file, that file's certificates alone.
//! `ADMF_REMOTE_HEADER` adds headers to every call (`name=value`, one per
//! line), as Bazel's `--remote_header` does: a bearer token is
//! `authorization=Bearer TOKEN`. Both come from the environment only,
//! never from a workflow file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2::{
    Action, ActionResult, BatchReadBlobsRequest, BatchUpdateBlobsRequest, Command, Digest,
    FindMissingBlobsRequest, GetActionResultRequest, GetCapabilitiesRequest, OutputFile,
    UpdateActionResultRequest, action_cache_client::ActionCacheClient, batch_update_blobs_request,
    capabilities_client::CapabilitiesClient,
    content_addressable_storage_client::ContentAddressableStorageClient, digest_function,
};
use bazel_remote_apis::google::bytestream::{
    ReadRequest, WriteRequest, byte_stream_client::ByteStreamClient,
};
use prost::Message;
use sha2::{Digest as _, Sha256};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::store::{Cache, Manifest, Store};

use super::pack::Pack;
use super::{RemoteCache, digests};

/// Where a ref set sits among its action result's output files.
const REF_SET_PATH: &str = "admf/refs.json";
/// Where a group's pack sits among its action result's output files.
const PACK_PATH: &str = "admf/pack";
/// Where the manifest sits among an action result's output files.
const MANIFEST_PATH: &str = "admf/manifest.json";
/// The folder of an action result's blobs, each named by its blake3.
const BLOB_DIR: &str = "admf/blake3/";
/// The most bytes one batch request carries: gRPC's default message limit
/// is 4 MiB, and a server may announce less.
const DEFAULT_BATCH_LIMIT: usize = 4 * 1024 * 1024;
/// Room for the request's framing around the blobs of one batch.
const BATCH_OVERHEAD: usize = 64 * 1024;
/// How many times a call the server was too busy for is tried again.
const BUSY_RETRIES: usize = 10;
/// How many calls one fetch of several entries has in flight at once.
const CONCURRENT_CALLS: usize = 32;
/// The size of one ByteStream write chunk.
const CHUNK: usize = 1024 * 1024;
/// The most digests one `FindMissingBlobs` names: about 100 bytes each,
/// well under gRPC's 4 MiB message limit.
const FIND_MISSING_BATCH: usize = 10_000;

/// What the server's `GetCapabilities` answered that the tier relies on.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Blobs of at most this many bytes go in batches; larger ones through
    /// ByteStream.
    batch_bytes: usize,
    /// Whether the server accepts `UpdateActionResult`.
    updates: bool,
}

/// Headers every call carries, from `ADMF_REMOTE_HEADER`.
#[derive(Clone, Default)]
pub struct Headers(Vec<(AsciiMetadataKey, AsciiMetadataValue)>);

impl Headers {
    /// `name=value` lines (blank lines ignored); the error names the bad
    /// line.
    pub fn parse(text: &str) -> Result<Headers, String> {
        let mut headers = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| format!("`{line}` is not name=value"))?;
            let key = AsciiMetadataKey::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{}` is not a header name", name.trim()))?;
            let value = AsciiMetadataValue::try_from(value.trim()).map_err(|_| {
                format!(
                    "the value of header `{}` is not printable ASCII",
                    name.trim()
                )
            })?;
            headers.push((key, value));
        }
        Ok(Headers(headers))
    }
}

impl tonic::service::Interceptor for Headers {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        for (key, value) in &self.0 {
            request.metadata_mut().append(key.clone(), value.clone());
        }
        Ok(request)
    }
}

/// The channel every client of the tier is made on.
type Transport = InterceptedService<Channel, Headers>;

/// A cache tier on a REAPI v2 server.
pub struct ReapiCache {
    url: String,
    instance: String,
    channel: Transport,
    runtime: tokio::runtime::Runtime,
    limits: OnceLock<Limits>,
    /// SHA-256 digests of blobs by blake3, learned from action results
    /// read and blobs written, for the [`Cache`] calls that name a blob by
    /// blake3 alone.
    sha_of: Mutex<HashMap<String, Digest>>,
}

/// An admf entry as a REAPI server holds it: the action digest and the
/// messages that make it up.
struct Published {
    command: Vec<u8>,
    action: Vec<u8>,
    action_digest: Digest,
}

/// The SHA-256 digest of `bytes`, as REAPI writes one.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    Digest {
        hash: hex(&Sha256::digest(bytes)),
        size_bytes: bytes.len() as i64,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}

/// The REAPI action that stands for the admf key `key`. Its digest depends
/// on the key alone, so every admf client maps a key to the same action.
fn action_for(key: &str) -> Published {
    action_of(&["admf", "exec-action", key])
}

/// The REAPI action that stands for the pack of the group `group`.
fn pack_action(group: &str) -> Published {
    action_of(&["admf", "pack", group])
}

/// The REAPI action that stands for a workflow's ref set named `name`.
fn ref_set_action(name: &str) -> Published {
    action_of(&["admf", "ref-set", name])
}

fn action_of(arguments: &[&str]) -> Published {
    let command = Command {
        arguments: arguments.iter().map(|a| a.to_string()).collect(),
        ..Command::default()
    }
    .encode_to_vec();
    let action = Action {
        command_digest: Some(sha256_digest(&command)),
        // The empty `Directory` message encodes to no bytes.
        input_root_digest: Some(sha256_digest(&[])),
        ..Action::default()
    }
    .encode_to_vec();
    Published {
        action_digest: sha256_digest(&action),
        command,
        action,
    }
}

/// The REAPI action digest of the admf key `key`.
pub fn action_digest(key: &str) -> Digest {
    action_for(key).action_digest
}

/// Runs one call, again after a pause while the server answers that it is
/// busy (`RESOURCE_EXHAUSTED`: a limit on concurrent calls), a few times.
/// Any other failure is returned at once: a server that is down must cost
/// a build one short wait, not a series.
async fn busy_retry<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut pause = Duration::from_millis(5);
    for _ in 0..BUSY_RETRIES {
        match call().await {
            Err(s) if s.code() == Code::ResourceExhausted => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            answer => return answer,
        }
    }
    call().await
}

/// The manifest's digest and the SHA-256 digest of each blob by blake3
/// that an action result lists; `None` for a result some other client
/// wrote under this digest (not admf's).
fn listing(result: ActionResult) -> Option<(Digest, BTreeMap<String, Digest>)> {
    let mut manifest_digest = None;
    let mut sha_of = BTreeMap::new();
    for file in result.output_files {
        let Some(digest) = file.digest else {
            continue;
        };
        if file.path == MANIFEST_PATH {
            manifest_digest = Some(digest);
        } else if let Some(blake3) = file.path.strip_prefix(BLOB_DIR) {
            sha_of.insert(blake3.to_string(), digest);
        }
    }
    Some((manifest_digest?, sha_of))
}

fn status_to_io(what: &str, status: Status) -> io::Error {
    let kind = match status.code() {
        Code::NotFound => io::ErrorKind::NotFound,
        Code::InvalidArgument | Code::FailedPrecondition => io::ErrorKind::InvalidInput,
        Code::PermissionDenied | Code::Unauthenticated => io::ErrorKind::PermissionDenied,
        Code::DeadlineExceeded => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    let message = status.message();
    let detail = if message.is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {message}", status.code())
    };
    io::Error::new(kind, format!("{what}: {detail}"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl ReapiCache {
    /// The tier at `url` (`grpc[s]://host:port[/instance]`), with TLS and
    /// headers from the environment. Nothing is contacted yet: the first
    /// call asks for the server's capabilities.
    pub fn open(url: &str) -> io::Result<ReapiCache> {
        let bad_input = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        let headers = match std::env::var("ADMF_REMOTE_HEADER") {
            Ok(text) => {
                Headers::parse(&text).map_err(|e| bad_input(format!("ADMF_REMOTE_HEADER: {e}")))?
            }
            Err(std::env::VarError::NotPresent) => Headers::default(),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(bad_input("ADMF_REMOTE_HEADER is not UTF-8".into()));
            }
        };
        let ca = match std::env::var_os("ADMF_REMOTE_CA").filter(|p| !p.is_empty()) {
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                bad_input(format!(
                    "ADMF_REMOTE_CA: cannot read {}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })?),
            None => None,
        };
        ReapiCache::open_with(url, headers, ca)
    }

    /// The tier at `url` with `headers` on every call and, for `grpcs://`,
    /// the certificates of `ca` (PEM) as the only roots when given.
    pub fn open_with(url: &str, headers: Headers, ca: Option<Vec<u8>>) -> io::Result<ReapiCache> {
        let (tls, rest) = match (url.strip_prefix("grpcs://"), url.strip_prefix("grpc://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "`{url}` is not a REAPI URL (want grpc://host:port[/instance] or grpcs://...)"
                    ),
                ));
            }
        };
        let (authority, instance) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || !authority.contains(':') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{url}` names no host:port"),
            ));
        }
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("`{url}`: {e}")))?
            // A server that does not answer must cost a build seconds.
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60));
        if tls {
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let config = ClientTlsConfig::new().domain_name(host);
            let config = match ca {
                Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
                None => config.with_native_roots(),
            };
            endpoint = endpoint.tls_config(config).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("`{url}`: TLS: {e}"))
            })?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let channel = {
            let _context = runtime.enter();
            InterceptedService::new(endpoint.connect_lazy(), headers)
        };
        Ok(ReapiCache {
            url: url.to_string(),
            instance: instance.trim_matches('/').to_string(),
            channel,
            runtime,
            limits: OnceLock::new(),
            sha_of: Mutex::new(HashMap::new()),
        })
    }

    /// The instance name requests carry (empty for the default instance).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn sha256() -> i32 {
        digest_function::Value::Sha256 as i32
    }

    /// The server's capabilities, asked for once: it must take SHA-256.
    async fn limits(&self) -> io::Result<Limits> {
        if let Some(limits) = self.limits.get() {
            return Ok(*limits);
        }
        let answer = busy_retry(|| {
            let mut client = CapabilitiesClient::new(self.channel.clone());
            let request = GetCapabilitiesRequest {
                instance_name: self.instance.clone(),
            };
            async move { client.get_capabilities(request).await }
        })
        .await
        .map_err(|s| status_to_io("GetCapabilities", s))?
        .into_inner();
        let cache = answer
            .cache_capabilities
            .ok_or_else(|| invalid(format!("{} announces no cache capabilities", self.url)))?;
        if !cache.digest_functions.contains(&Self::sha256()) {
            return Err(invalid(format!(
                "{} does not take SHA-256 digests (it lists {:?})",
                self.url, cache.digest_functions
            )));
        }
        let announced = usize::try_from(cache.max_batch_total_size_bytes).unwrap_or(0);
        let batch = if announced == 0 {
            DEFAULT_BATCH_LIMIT
        } else {
            announced.min(DEFAULT_BATCH_LIMIT)
        };
        let limits = Limits {
            batch_bytes: batch.saturating_sub(BATCH_OVERHEAD).max(1024),
            updates: cache
                .action_cache_update_capabilities
                .is_some_and(|c| c.update_enabled),
        };
        Ok(*self.limits.get_or_init(|| limits))
    }

    fn cas(&self) -> ContentAddressableStorageClient<Transport> {
        ContentAddressableStorageClient::new(self.channel.clone())
            .max_decoding_message_size(DEFAULT_BATCH_LIMIT + BATCH_OVERHEAD)
    }

    /// Which of `wanted` the server lacks (by SHA-256 hash).
    async fn find_missing(&self, wanted: &[Digest]) -> io::Result<BTreeSet<String>> {
        if wanted.is_empty() {
            return Ok(BTreeSet::new());
        }
        self.limits().await?;
        let answer = busy_retry(|| {
            let mut client = self.cas();
            let request = FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: wanted.to_vec(),
                digest_function: Self::sha256(),
            };
            async move { client.find_missing_blobs(request).await }
        })
        .await
        .map_err(|s| status_to_io("FindMissingBlobs", s))?
        .into_inner();
        Ok(answer
            .missing_blob_digests
            .into_iter()
            .map(|d| d.hash)
            .collect())
    }

    /// Uploads `blobs` (digest and bytes): small ones packed into batches
    /// under the server's limit, large ones through ByteStream.
    async fn upload(&self, blobs: Vec<(Digest, Vec<u8>)>) -> io::Result<()> {
        let limits = self.limits().await?;
        let mut batch = Vec::new();
        let mut batch_size = 0;
        for (digest, data) in blobs {
            if data.len() > limits.batch_bytes {
                self.write_stream(&digest, &data).await?;
                continue;
            }
            if batch_size + data.len() > limits.batch_bytes {
                self.write_batch(std::mem::take(&mut batch)).await?;
                batch_size = 0;
            }
            batch_size += data.len();
            batch.push(batch_update_blobs_request::Request {
                digest: Some(digest),
                data,
                compressor: 0,
            });
        }
        self.write_batch(batch).await
    }

    async fn write_batch(
        &self,
        requests: Vec<batch_update_blobs_request::Request>,
    ) -> io::Result<()> {
        if requests.is_empty() {
            return Ok(());
        }
        let answer = busy_retry(|| {
            let mut client = self.cas();
            let request = BatchUpdateBlobsRequest {
                instance_name: self.instance.clone(),
                requests: requests.clone(),
                digest_function: Self::sha256(),
            };
            async move { client.batch_update_blobs(request).await }
        })
        .await
        .map_err(|s| status_to_io("BatchUpdateBlobs", s))?
        .into_inner();
        for response in answer.responses {
            if let Some(status) = response.status
                && status.code != 0
            {
                let hash = response.digest.map(|d| d.hash).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "BatchUpdateBlobs refused {hash}: code {} {}",
                    status.code, status.message
                )));
            }
        }
        Ok(())
    }

    fn resource(&self, digest: &Digest) -> String {
        let blobs = format!("blobs/{}/{}", digest.hash, digest.size_bytes);
        if self.instance.is_empty() {
            blobs
        } else {
            format!("{}/{blobs}", self.instance)
        }
    }

    async fn write_stream(&self, digest: &Digest, data: &[u8]) -> io::Result<()> {
        // A name no other upload of this or another process uses.
        static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let count = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            std::process::id(),
            (nanos >> 48) as u16,
            (nanos >> 36) as u16 & 0xfff,
            (count as u16) & 0xfff,
            nanos & 0xffff_ffff_ffff
        );
        let name = if self.instance.is_empty() {
            format!("uploads/{uuid}/blobs/{}/{}", digest.hash, digest.size_bytes)
        } else {
            format!(
                "{}/uploads/{uuid}/blobs/{}/{}",
                self.instance, digest.hash, digest.size_bytes
            )
        };
        let mut requests = Vec::new();
        let mut offset = 0;
        // One request even for an empty blob, carrying `finish_write`.
        loop {
            let end = (offset + CHUNK).min(data.len());
            requests.push(WriteRequest {
                resource_name: if offset == 0 {
                    name.clone()
                } else {
                    String::new()
                },
                write_offset: offset as i64,
                finish_write: end == data.len(),
                data: data[offset..end].to_vec(),
            });
            offset = end;
            if offset == data.len() {
                break;
            }
        }
        let answer = busy_retry(|| {
            let mut client = ByteStreamClient::new(self.channel.clone());
            let request = futures::stream::iter(requests.clone());
            async move { client.write(request).await }
        })
        .await
        .map_err(|s| status_to_io("ByteStream.Write", s))?
        .into_inner();
        if answer.committed_size != data.len() as i64 {
            return Err(io::Error::other(format!(
                "ByteStream.Write of {} committed {} of {} bytes",
                digest.hash,
                answer.committed_size,
                data.len()
            )));
        }
        Ok(())
    }

    /// Reads `wanted` from the server, each checked against its SHA-256
    /// digest: `None` for a blob the server lacks or holds corrupt.
    async fn download(&self, wanted: &[Digest]) -> io::Result<HashMap<String, Option<Vec<u8>>>> {
        let limits = self.limits().await?;
        let mut found = HashMap::new();
        let mut batch: Vec<Digest> = Vec::new();
        let mut batch_size = 0;
        let mut batches = Vec::new();
        for digest in wanted {
            let size = usize::try_from(digest.size_bytes).unwrap_or(usize::MAX);
            if size > limits.batch_bytes {
                let bytes = self.read_stream(digest).await?;
                found.insert(digest.hash.clone(), bytes);
                continue;
            }
            if batch_size + size > limits.batch_bytes && !batch.is_empty() {
                batches.push(std::mem::take(&mut batch));
                batch_size = 0;
            }
            batch_size += size;
            batch.push(digest.clone());
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        let answers =
            futures::future::try_join_all(batches.into_iter().map(|b| self.read_batch(b))).await?;
        for answer in answers {
            found.extend(answer);
        }
        Ok(found)
    }

    async fn read_batch(
        &self,
        digests: Vec<Digest>,
    ) -> io::Result<HashMap<String, Option<Vec<u8>>>> {
        let answer = busy_retry(|| {
            let mut client = self.cas();
            let request = BatchReadBlobsRequest {
                instance_name: self.instance.clone(),
                digests: digests.clone(),
                acceptable_compressors: Vec::new(),
                digest_function: Self::sha256(),
            };
            async move { client.batch_read_blobs(request).await }
        })
        .await
        .map_err(|s| status_to_io("BatchReadBlobs", s))?
        .into_inner();
        let mut found: HashMap<String, Option<Vec<u8>>> =
            digests.iter().map(|d| (d.hash.clone(), None)).collect();
        for response in answer.responses {
            let Some(digest) = response.digest else {
                continue;
            };
            let ok = response.status.as_ref().is_none_or(|s| s.code == 0);
            if ok && sha256_digest(&response.data) == digest {
                found.insert(digest.hash, Some(response.data));
            }
        }
        Ok(found)
    }

    async fn read_stream(&self, digest: &Digest) -> io::Result<Option<Vec<u8>>> {
        let request = ReadRequest {
            resource_name: self.resource(digest),
            read_offset: 0,
            read_limit: 0,
        };
        let mut stream = match busy_retry(|| {
            let mut client = ByteStreamClient::new(self.channel.clone());
            let request = request.clone();
            async move { client.read(request).await }
        })
        .await
        {
            Ok(answer) => answer.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(status_to_io("ByteStream.Read", s)),
        };
        let mut data = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(chunk)) => data.extend_from_slice(&chunk.data),
                Ok(None) => break,
                Err(s) if s.code() == Code::NotFound => return Ok(None),
                Err(s) => return Err(status_to_io("ByteStream.Read", s)),
            }
        }
        Ok((sha256_digest(&data) == *digest).then_some(data))
    }

    /// The action result the server holds for `key`, `None` when it has
    /// none.
    async fn action_result(&self, key: &str) -> io::Result<Option<ActionResult>> {
        self.result_of(action_digest(key)).await
    }

    async fn result_of(&self, action: Digest) -> io::Result<Option<ActionResult>> {
        self.limits().await?;
        let answer = busy_retry(|| {
            let mut client = ActionCacheClient::new(self.channel.clone());
            let request = GetActionResultRequest {
                instance_name: self.instance.clone(),
                action_digest: Some(action.clone()),
                digest_function: Self::sha256(),
                ..GetActionResultRequest::default()
            };
            async move { client.get_action_result(request).await }
        })
        .await;
        match answer {
            Ok(result) => Ok(Some(result.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(status_to_io("GetActionResult", s)),
        }
    }

    /// The manifest of `key` and the SHA-256 digest of each blob it names,
    /// read and checked; `None` when the server has no sound entry.
    async fn read_entry(
        &self,
        key: &str,
    ) -> io::Result<Option<(Manifest, BTreeMap<String, Digest>)>> {
        Ok(self.read_entries(&[key.to_string()]).await?.pop().flatten())
    }

    /// [`ReapiCache::read_entry`] of each of `keys`, in order: the results
    /// asked for [`CONCURRENT_CALLS`] at a time, and the manifests of all
    /// of them read in as few batches as their size allows.
    async fn read_entries(
        &self,
        keys: &[String],
    ) -> io::Result<Vec<Option<(Manifest, BTreeMap<String, Digest>)>>> {
        use futures::{StreamExt, TryStreamExt};
        let results: Vec<Option<ActionResult>> = futures::stream::iter(keys)
            .map(|key| self.action_result(key))
            .buffered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        let listed: Vec<Option<(Digest, BTreeMap<String, Digest>)>> =
            results.into_iter().map(|r| r.and_then(listing)).collect();
        let manifests: Vec<Digest> = listed.iter().flatten().map(|(d, _)| d.clone()).collect();
        let mut found = self.download(&manifests).await?;
        let mut entries = Vec::with_capacity(keys.len());
        for (key, listed) in keys.iter().zip(listed) {
            let entry = listed.and_then(|(manifest_digest, sha_of)| {
                let bytes = found.get_mut(&manifest_digest.hash)?.as_ref()?;
                let manifest = serde_json::from_slice::<Manifest>(bytes).ok()?;
                let sound =
                    manifest.key == *key && digests(&manifest).all(|d| sha_of.contains_key(d));
                sound.then_some((manifest, sha_of))
            });
            if let Some((_, sha_of)) = &entry {
                let mut known = self.sha_of.lock().unwrap_or_else(|e| e.into_inner());
                for (blake3, digest) in sha_of {
                    known.insert(blake3.clone(), digest.clone());
                }
            }
            entries.push(entry);
        }
        found.clear();
        Ok(entries)
    }

    /// Fetches the blobs `wanted` (blake3 → SHA-256 digest), each checked
    /// against both digests; `None` when any is missing or unsound.
    async fn fetch_blobs(
        &self,
        wanted: &BTreeMap<String, Digest>,
    ) -> io::Result<Option<Vec<Vec<u8>>>> {
        let digests: Vec<Digest> = wanted.values().cloned().collect();
        let mut found = self.download(&digests).await?;
        let mut blobs = Vec::with_capacity(wanted.len());
        for (blake3, digest) in wanted {
            let Some(Some(bytes)) = found.remove(&digest.hash) else {
                return Ok(None);
            };
            if blake3::hash(&bytes).to_hex().as_str() != blake3 {
                return Ok(None);
            }
            blobs.push(bytes);
        }
        Ok(Some(blobs))
    }

    /// Publishes the entry `manifest` whose blobs are `blobs` (blake3 →
    /// bytes): missing blobs first, then the action, then its result.
    async fn publish(
        &self,
        manifest: &Manifest,
        blobs: &BTreeMap<String, Vec<u8>>,
    ) -> io::Result<()> {
        let limits = self.limits().await?;
        if !limits.updates {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} does not accept action results", self.url),
            ));
        }
        let manifest_bytes = serde_json::to_vec(manifest).map_err(io::Error::other)?;
        let published = action_for(&manifest.key);
        let mut output_files = vec![OutputFile {
            path: MANIFEST_PATH.into(),
            digest: Some(sha256_digest(&manifest_bytes)),
            ..OutputFile::default()
        }];
        let mut uploads = vec![
            (sha256_digest(&manifest_bytes), manifest_bytes),
            (sha256_digest(&published.command), published.command.clone()),
            (sha256_digest(&published.action), published.action.clone()),
            (sha256_digest(&[]), Vec::new()),
        ];
        for (blake3, bytes) in blobs {
            let digest = sha256_digest(bytes);
            output_files.push(OutputFile {
                path: format!("{BLOB_DIR}{blake3}"),
                digest: Some(digest.clone()),
                ..OutputFile::default()
            });
            uploads.push((digest, bytes.clone()));
        }
        self.upload_missing(uploads).await?;
        self.update_result(published.action_digest, output_files)
            .await
    }

    /// Records the action result of `action`, whose blobs are uploaded.
    async fn update_result(&self, action: Digest, output_files: Vec<OutputFile>) -> io::Result<()> {
        let request = UpdateActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(action),
            action_result: Some(ActionResult {
                output_files,
                ..ActionResult::default()
            }),
            results_cache_policy: None,
            digest_function: Self::sha256(),
        };
        busy_retry(|| {
            let mut client = ActionCacheClient::new(self.channel.clone());
            let request = request.clone();
            async move { client.update_action_result(request).await }
        })
        .await
        .map_err(|s| status_to_io("UpdateActionResult", s))?;
        Ok(())
    }

    /// Uploads what of `published` and `blobs` the server lacks.
    async fn upload_missing(&self, mut uploads: Vec<(Digest, Vec<u8>)>) -> io::Result<()> {
        let all: Vec<Digest> = uploads.iter().map(|(d, _)| d.clone()).collect();
        let missing = self.find_missing(&all).await?;
        let mut seen = BTreeSet::new();
        uploads.retain(|(d, _)| missing.contains(&d.hash) && seen.insert(d.hash.clone()));
        self.upload(uploads).await
    }

    /// The bytes of the output file `path` of the result of `action`:
    /// `None` when the server holds no such result or file.
    async fn result_file(&self, action: Digest, path: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(result) = self.result_of(action).await? else {
            return Ok(None);
        };
        let Some(digest) = result
            .output_files
            .into_iter()
            .find(|f| f.path == path)
            .and_then(|f| f.digest)
        else {
            return Ok(None);
        };
        Ok(self
            .download(std::slice::from_ref(&digest))
            .await?
            .remove(&digest.hash)
            .flatten())
    }

    /// Records `bytes` as the one output file `path` of the result of
    /// `published`: the file and the action uploaded first.
    async fn put_result_file(
        &self,
        published: Published,
        path: &str,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        if !self.limits().await?.updates {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} does not accept action results", self.url),
            ));
        }
        let digest = sha256_digest(&bytes);
        self.upload_missing(vec![
            (digest.clone(), bytes),
            (sha256_digest(&published.command), published.command),
            (sha256_digest(&published.action), published.action),
            (sha256_digest(&[]), Vec::new()),
        ])
        .await?;
        let file = OutputFile {
            path: path.into(),
            digest: Some(digest),
            ..OutputFile::default()
        };
        self.update_result(published.action_digest, vec![file])
            .await
    }

    fn known_sha(&self, blake3: &str) -> Option<Digest> {
        self.sha_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(blake3)
            .cloned()
    }
}

impl RemoteCache for ReapiCache {
    fn fetch_into(&self, key: &str, local: &Store) -> io::Result<bool> {
        Ok(self.fetch_many(&[key.to_string()], local)?[0])
    }

    /// Reads the results of all `keys` (a few at a time), then all their
    /// manifests, then every blob the local store lacks, each in as few
    /// batches as the server's limit allows: a few calls per ready group,
    /// not three per entry.
    fn fetch_many(&self, keys: &[String], local: &Store) -> io::Result<Vec<bool>> {
        self.runtime.block_on(async {
            let entries = self.read_entries(keys).await?;
            let mut wanted = BTreeMap::new();
            for (manifest, sha_of) in entries.iter().flatten() {
                for digest in digests(manifest) {
                    if !wanted.contains_key(digest) && !local.has_blob(digest)? {
                        wanted.insert(digest.to_string(), sha_of[digest].clone());
                    }
                }
            }
            let shas: Vec<Digest> = wanted.values().cloned().collect();
            let mut found = self.download(&shas).await?;
            // Each blob checked against its blake3 as well, and stored
            // once however many entries name it.
            let mut sound_blobs = BTreeSet::new();
            for (digest, sha) in &wanted {
                if let Some(Some(bytes)) = found.get(&sha.hash)
                    && blake3::hash(bytes).to_hex().as_str() == digest
                {
                    Cache::put_blob(local, bytes)?;
                    sound_blobs.insert(digest.as_str());
                }
            }
            let mut copied = Vec::with_capacity(keys.len());
            for entry in entries {
                let Some((manifest, _)) = entry else {
                    copied.push(false);
                    continue;
                };
                // A blob missing or unsound makes this entry a miss, not
                // the rest.
                let sound =
                    digests(&manifest).all(|d| !wanted.contains_key(d) || sound_blobs.contains(d));
                if sound {
                    Cache::put_action(local, &manifest)?;
                }
                copied.push(sound);
            }
            found.clear();
            Ok(copied)
        })
    }

    fn publish_from(&self, local: &Store, key: &str) -> io::Result<bool> {
        // A key already there is left alone: published once, by whichever
        // writer comes first.
        if self.runtime.block_on(self.action_result(key))?.is_some() {
            return Ok(false);
        }
        let Some(manifest) = Cache::get_action(local, key)? else {
            return Ok(false);
        };
        let mut blobs = BTreeMap::new();
        for digest in digests(&manifest) {
            if blobs.contains_key(digest) {
                continue;
            }
            let bytes = local.read_blob(digest)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("blob {digest} vanished"))
            })?;
            blobs.insert(digest.to_string(), bytes);
        }
        self.runtime.block_on(self.publish(&manifest, &blobs))?;
        Ok(true)
    }

    fn has_action(&self, key: &str) -> io::Result<bool> {
        Ok(self.runtime.block_on(self.action_result(key))?.is_some())
    }

    /// The results of all `keys` ([`CONCURRENT_CALLS`] at a time), all
    /// their manifests in as few batches as the server's limit allows,
    /// then one `FindMissingBlobs` per [`FIND_MISSING_BATCH`] of the blobs
    /// they list: the calls of a group fetch, without reading the blobs.
    fn held(&self, keys: &[String]) -> io::Result<Vec<Option<Manifest>>> {
        self.runtime.block_on(async {
            let entries = self.read_entries(keys).await?;
            let mut listed: Vec<Digest> = entries
                .iter()
                .flatten()
                .flat_map(|(_, sha_of)| sha_of.values().cloned())
                .collect();
            listed.sort_by(|a, b| a.hash.cmp(&b.hash));
            listed.dedup();
            let mut missing = BTreeSet::new();
            for chunk in listed.chunks(FIND_MISSING_BATCH) {
                missing.extend(self.find_missing(chunk).await?);
            }
            Ok(entries
                .into_iter()
                .map(|entry| {
                    let (manifest, sha_of) = entry?;
                    sha_of
                        .values()
                        .all(|d| !missing.contains(&d.hash))
                        .then_some(manifest)
                })
                .collect())
        })
    }

    fn put_ref_set(&self, name: &str, refs: &[(String, String)]) -> io::Result<()> {
        let text = serde_json::to_vec(refs).map_err(io::Error::other)?;
        self.runtime
            .block_on(self.put_result_file(ref_set_action(name), REF_SET_PATH, text))
    }

    fn get_ref_set(&self, name: &str) -> io::Result<Option<Vec<(String, String)>>> {
        let action = ref_set_action(name).action_digest;
        let Some(bytes) = self
            .runtime
            .block_on(self.result_file(action, REF_SET_PATH))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// One `GetActionResult` and one read of the pack, then the large
    /// blobs the wanted entries name and the local store lacks, in as few
    /// batches as the server's limit allows.
    fn fetch_pack(
        &self,
        group: &str,
        wanted: &[String],
        local: &Store,
    ) -> io::Result<Option<Vec<bool>>> {
        self.runtime.block_on(async {
            let action = pack_action(group).action_digest;
            let Some(bytes) = self.result_file(action, PACK_PATH).await? else {
                return Ok(None);
            };
            // A pack that is not sound is no pack: the entries are read
            // one by one.
            let Ok(pack) = Pack::decode(bytes) else {
                return Ok(None);
            };
            let needed = pack.outside_needed(wanted, local)?;
            let shas: Vec<Digest> = needed
                .iter()
                .map(|o| Digest {
                    hash: o.sha256.clone(),
                    size_bytes: i64::try_from(o.size).unwrap_or(i64::MAX),
                })
                .collect();
            let mut found = self.download(&shas).await?;
            let fetched = needed
                .into_iter()
                .filter_map(|o| Some((o.blake3, found.remove(&o.sha256)??)))
                .collect();
            pack.install(wanted, local, &fetched).map(Some)
        })
    }

    /// Records the pack as the result of the group's action; a pack some
    /// other writer recorded first is left alone.
    fn publish_pack(&self, group: &str, pack: Vec<u8>) -> io::Result<bool> {
        let published = pack_action(group);
        self.runtime.block_on(async {
            if self
                .result_of(published.action_digest.clone())
                .await?
                .is_some()
            {
                return Ok(false);
            }
            self.put_result_file(published, PACK_PATH, pack).await?;
            Ok(true)
        })
    }
}

impl Cache for ReapiCache {
    /// Whether the server holds the blob; a blob whose SHA-256 this tier
    /// has not learned (from a result read or a blob written) counts as
    /// absent.
    fn has_blob(&self, digest: &str) -> io::Result<bool> {
        let Some(sha) = self.known_sha(digest) else {
            return Ok(false);
        };
        let missing = self
            .runtime
            .block_on(self.find_missing(std::slice::from_ref(&sha)))?;
        Ok(missing.is_empty())
    }

    fn get_blob(&self, digest: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(sha) = self.known_sha(digest) else {
            return Ok(None);
        };
        let wanted = BTreeMap::from([(digest.to_string(), sha)]);
        Ok(self
            .runtime
            .block_on(self.fetch_blobs(&wanted))?
            .and_then(|mut b| b.pop()))
    }

    fn put_blob(&self, bytes: &[u8]) -> io::Result<String> {
        let blake3 = blake3::hash(bytes).to_hex().to_string();
        let sha = sha256_digest(bytes);
        self.runtime.block_on(async {
            if !self
                .find_missing(std::slice::from_ref(&sha))
                .await?
                .is_empty()
            {
                self.upload(vec![(sha.clone(), bytes.to_vec())]).await?;
            }
            io::Result::Ok(())
        })?;
        self.sha_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(blake3.clone(), sha);
        Ok(blake3)
    }

    fn get_action(&self, key: &str) -> io::Result<Option<Manifest>> {
        self.runtime.block_on(async {
            let Some((manifest, sha_of)) = self.read_entry(key).await? else {
                return Ok(None);
            };
            let all: Vec<Digest> = sha_of.values().cloned().collect();
            Ok(self
                .find_missing(&all)
                .await?
                .is_empty()
                .then_some(manifest))
        })
    }

    /// Publishes `result`; every blob it names must have been written
    /// through this tier (or read from it) first.
    fn put_action(&self, result: &Manifest) -> io::Result<()> {
        let mut blobs = BTreeMap::new();
        for digest in digests(result) {
            if blobs.contains_key(digest) {
                continue;
            }
            let bytes = self.get_blob(digest)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "action {} names blob {digest}, which is not stored",
                        result.key
                    ),
                )
            })?;
            blobs.insert(digest.to_string(), bytes);
        }
        self.runtime.block_on(self.publish(result, &blobs))
    }

    fn list_actions(&self) -> io::Result<Vec<String>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{}: a REAPI action cache cannot be listed", self.url),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_host_port_and_an_optional_instance() {
        assert!(ReapiCache::open("s3://bucket").is_err());
        assert!(ReapiCache::open("grpc://").is_err());
        assert!(ReapiCache::open("grpc://localhost").is_err());
        assert_eq!(
            ReapiCache::open("grpc://127.0.0.1:1").unwrap().instance(),
            ""
        );
        let cache = ReapiCache::open("grpc://127.0.0.1:1/main/sub/").unwrap();
        assert_eq!(cache.instance(), "main/sub");
        let digest = Digest {
            hash: "ab".into(),
            size_bytes: 3,
        };
        assert_eq!(cache.resource(&digest), "main/sub/blobs/ab/3");
    }

    #[test]
    fn sha256_digests_match_the_published_test_vector() {
        // FIPS 180-2, appendix B.1.
        let digest = sha256_digest(b"abc");
        assert_eq!(
            digest.hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest.size_bytes, 3);
        assert_eq!(
            sha256_digest(&[]).hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn an_action_digest_depends_on_the_key_alone() {
        let a = action_digest(&"1".repeat(64));
        assert_eq!(a, action_digest(&"1".repeat(64)));
        assert_ne!(a, action_digest(&"2".repeat(64)));
        // The action is a real REAPI message naming its command.
        let published = action_for(&"1".repeat(64));
        let action = Action::decode(published.action.as_slice()).unwrap();
        assert_eq!(
            action.command_digest,
            Some(sha256_digest(&published.command))
        );
        let command = Command::decode(published.command.as_slice()).unwrap();
        assert_eq!(command.arguments[2], "1".repeat(64));
    }
}
