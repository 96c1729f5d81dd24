//! The up-to-date record: proof that the last build of a workflow was a
//! no-op, so that the same build again can say so after one `stat` per
//! file, without loading YAML, computing keys or opening store entries.
//!
//! A build writes `<store>/runs/<workflow-id>/uptodate` only when every
//! selected node came from the cache, was skipped, or ran in a way the
//! same build again would find cached (see below), and nothing it read
//! changed while it was read (an output it restored is a fresh file, which
//! the racy rule below keeps out). The record holds:
//!
//! - a hash of the invocation: record format, admf version, key schema,
//!   store layout (given by the caller), workflow path, `--set` values
//!   and targets, and the store root;
//! - every file and directory the build read, with the stat it had when
//!   read ([`crate::reads`]): workflow files, inputs, directories that
//!   globs listed, store manifests and outputs, workspace outputs, and the
//!   admf executable itself;
//! - what to report: each selected node's id, key, skip reason and
//!   report path, in planned order.
//!
//! The next build with the same invocation stats each file; if every stat
//! matches (and each workspace output is still a plain file), the full
//! build would read the same bytes, compute the same keys and find the
//! same entries, so the summary is reprinted from the record. Any other
//! build deletes the record before it dispatches anything, so a record
//! never outlives the refs and workspace it describes.
//!
//! Stats are trusted like the stat cache trusts them (size, mtime in ns,
//! inode, device, ctime), and with the same guard against racy-clean files: a
//! file modified shortly before the build started could change again in
//! the same timestamp tick without changing its stat, so no record is
//! written while any observed mtime is that recent (100 ms on file
//! systems with sub-second timestamps, 2 s otherwise: [`crate::file_stat::is_racy`]),
//! unless the build knows the content the file had when it was used: the
//! record then holds its blake3 too, and the next build reads the file and
//! compares (as git compares a racily clean file's content). That is how
//! a build that ran a node after an edit leaves a record: the input it
//! hashed moments after the edit and the outputs the node wrote are too
//! recent for their stats, but their digests are known (the hash taken
//! for the key, the digests the store recorded), so the first build after
//! it is answered by the record too.
//!
//! # File format
//!
//! ```text
//! admf-uptodate 4
//! invocation <blake3 hex>
//! node <key or -> <s|-><m|-> <id>   (s: the node got a job; m: its entry
//!                                 may hold a metrics.json, -: it holds none)
//! skip <reason>                  (after a skipped node)
//! report <path>                  (after a node that wrote a report)
//! file <size> <mtime ns> <inode> <device> <ctime ns> <p|-> <path>   (p: must be a plain file)
//! digest <blake3 hex>            (after a file too recent for its stat: its content)
//! ```
//! Files are listed most recently modified first.
//! Ids, reasons and paths are escaped as in the stat cache. A malformed
//! record is no record. The last line is `sum <blake3 of every byte before
//! it>`; a record whose sum differs is no record.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use crate::file_stat::{Stat, escape_path, is_racy, system_time_ns, unescape_path};

const HEADER: &str = "admf-uptodate 4";
const FILE_NAME: &str = "uptodate";

/// One selected node as the summary reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    pub key: Option<String>,
    /// `Some(reason)` for a skipped node; `None`: cached.
    pub skipped: Option<String>,
    /// Whether the node got a job: one skipped because its upstream was
    /// skipped did not, and its events have no `start` line.
    pub started: bool,
    pub report: Option<PathBuf>,
    /// Whether its entry is known to hold no `metrics.json`: the run
    /// ledger then looks none up for it ([`crate::store::RunNode::metrics_blob`]).
    pub no_metrics: bool,
}

/// Where the record of workflow `workflow_id` lives in the store at `store_root`.
pub fn path(store_root: &Path, workflow_id: &str) -> PathBuf {
    store_root.join("runs").join(workflow_id).join(FILE_NAME)
}

/// The invocation hash: everything besides file contents that decides
/// what a build does.
pub fn invocation(parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [HEADER, env!("CARGO_PKG_VERSION")].iter().chain(parts) {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// Remove the record: a build that may change refs or the workspace is
/// about to start.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// How a build vouches for a file modified too shortly before it was
/// read for its stat to prove anything.
pub struct Vouch<'a> {
    /// Whether the file was read again since, once no write could keep its
    /// stat, and found as it was.
    pub read_again: &'a dyn Fn(&Path, &Stat) -> bool,
    /// The blake3 of the content the file had with that stat, when the
    /// build knows it: the record holds it, and the next build compares.
    pub digest: &'a dyn Fn(&Path, &Stat) -> Option<String>,
}

/// The largest file a record vouches for by its digest: every build the
/// record answers reads it again, so a large recent file means no record
/// (the next no-op takes the full path and writes one by stats alone).
const DIGEST_MAX: u64 = 1 << 20;

impl Vouch<'_> {
    /// The digest to record for a file too recent for its stat; `None`
    /// when there is none to record (unknown, or the file too large).
    fn digest_to_record(&self, path: &Path, stat: &Stat) -> Option<String> {
        if stat.size > DIGEST_MAX {
            return None;
        }
        (self.digest)(path, stat)
    }
}

/// Write the record, unless an observation is too recent to trust
/// (returns `Ok(false)`). `started` is when the build began reading;
/// `vouch` says what the build knows of a file modified too shortly
/// before it ([`too_recent`]).
pub fn save(
    path: &Path,
    invocation: &str,
    nodes: &[NodeLine],
    files: &[(PathBuf, Stat)],
    plain: &PlainOutputs<'_>,
    started: SystemTime,
    vouch: &Vouch,
) -> io::Result<bool> {
    let started_ns = system_time_ns(started);
    // The digest of each file too recent for its stat alone.
    let mut digests: rustc_hash::FxHashMap<&OsStr, String> = Default::default();
    for (file, s) in files {
        if !is_racy(s, started_ns) || (vouch.read_again)(file, s) {
            continue;
        }
        match vouch.digest_to_record(file, s) {
            Some(digest) => digests.insert(file.as_os_str(), digest),
            None => return Ok(false),
        };
    }
    // A file's line is about its path and five numbers: sized for that,
    // the text grows once at most instead of copying itself over again.
    let paths: usize = files.iter().map(|(p, _)| p.as_os_str().len()).sum();
    let mut text = String::with_capacity(80 * nodes.len() + 96 * files.len() + paths + 128);
    text.push_str(HEADER);
    text.push('\n');
    text.push_str(&format!("invocation {invocation}\n"));
    for node in nodes {
        let key = node.key.as_deref().unwrap_or("-");
        text.push_str("node ");
        text.push_str(key);
        text.push(' ');
        text.push(if node.started { 's' } else { '-' });
        text.push(if node.no_metrics { '-' } else { 'm' });
        text.push(' ');
        crate::file_stat::push_escaped_path(&mut text, Path::new(&node.id));
        text.push('\n');
        if let Some(reason) = &node.skipped {
            text.push_str(&format!("skip {}\n", escape_text(reason)));
        }
        if let Some(report) = &node.report {
            text.push_str(&format!("report {}\n", escape_path(report)));
        }
    }
    // Most recently modified first: a file edited lately is the likeliest
    // to have been edited again, and the check stops at the first change.
    let mut by_recency: Vec<&(PathBuf, Stat)> = files.iter().collect();
    by_recency.sort_by_key(|(_, s)| std::cmp::Reverse(s.mtime_ns));
    for (file, s) in by_recency {
        let flag = if plain.contains(file.as_os_str()) {
            " p "
        } else {
            " - "
        };
        text.push_str("file ");
        crate::file_stat::push_stat(&mut text, s);
        text.push_str(flag);
        crate::file_stat::push_escaped_path(&mut text, file);
        text.push('\n');
        if let Some(digest) = (!digests.is_empty())
            .then(|| digests.get(file.as_os_str()))
            .flatten()
        {
            text.push_str("digest ");
            text.push_str(digest);
            text.push('\n');
        }
    }
    crate::file_stat::push_checksum(&mut text);
    crate::atomic_file::write(path, text.as_bytes())?;
    Ok(true)
}

/// The first of `files` too recently modified for a record, with how
/// long before `started` it was modified (negative ages read as zero): a
/// file whose mtime is too close to `started` could have changed again
/// after it was read without its stat showing it, unless `vouch` can
/// vouch for it (its content read again once that could no longer
/// happen and found the same, or its digest known).
pub fn too_recent<'a>(
    files: &'a [(PathBuf, Stat)],
    started: SystemTime,
    vouch: &Vouch,
) -> Option<(&'a Path, Duration)> {
    let started_ns = system_time_ns(started);
    files
        .iter()
        .find(|(path, s)| {
            is_racy(s, started_ns)
                && !(vouch.read_again)(path, s)
                && vouch.digest_to_record(path, s).is_none()
        })
        .map(|(path, s)| {
            let age = u64::try_from(started_ns.saturating_sub(s.mtime_ns)).unwrap_or(0);
            (path.as_path(), Duration::from_nanos(age))
        })
}

/// The record's nodes, if it exists, was written for `invocation`, and
/// every file it lists still has the recorded stat.
pub fn check(path: &Path, invocation: &str) -> Option<Vec<NodeLine>> {
    let text = fs::read_to_string(path).ok()?;
    let (nodes, files) = parse(&text, invocation, true)?;
    all_unchanged(&files).then_some(nodes)
}

/// The record's nodes, if it exists and was written for `invocation`,
/// without looking at its files: for a build told by `admf serve`, which
/// watches them, that none changed since it checked them.
pub fn nodes_unchecked(path: &Path, invocation: &str) -> Option<Vec<NodeLine>> {
    let text = fs::read_to_string(path).ok()?;
    parse(&text, invocation, false).map(|(nodes, _)| nodes)
}

/// The paths a record lists as plain files (the workspace outputs),
/// by their bytes.
pub type PlainOutputs<'a> = rustc_hash::FxHashSet<Cow<'a, OsStr>>;

/// A file as a record lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: PathBuf,
    /// Its stat when the build read it.
    pub stat: Stat,
    /// Whether it must be a plain file (else a directory, say, or a
    /// symlink followed).
    pub plain: bool,
    /// The blake3 of its content, for a file too recent for its stat.
    pub digest: Option<String>,
}

/// The files a record written for `invocation` lists: what `admf serve`
/// watches for it, and checks a few of at a time ([`all_hold`]).
pub fn listed(text: &str, invocation: &str) -> Option<Vec<Listed>> {
    let (_, files) = parse(text, invocation, true)?;
    Some(
        files
            .into_iter()
            .map(|(path, stat, plain, digest)| Listed {
                path: path.into_owned(),
                stat,
                plain,
                digest: digest.map(str::to_string),
            })
            .collect(),
    )
}

/// The recorded stat of each file a record written for `invocation`
/// lists without a digest (one whose stat proved its content when the
/// record was written), with whether it must be a plain file: what
/// `admf serve` can vouch for file by file ([`listed_stats_of`]), once
/// the entries it does not vouch for are left out.
pub type ListedStats = crate::reads::VouchedStats;

/// [`ListedStats`] of the record at `path`, from a copy read ahead
/// ([`preload`]) or the file itself.
pub fn listed_stats_of(path: &Path, invocation: &str) -> Option<ListedStats> {
    if let Some((written_for, stats)) = crate::preload::take::<(String, ListedStats)>(path) {
        return (written_for == invocation).then_some(stats);
    }
    let text = fs::read_to_string(path).ok()?;
    listed_stats(&text, invocation)
}

fn listed_stats(text: &str, invocation: &str) -> Option<ListedStats> {
    let (_, files) = parse(text, invocation, true)?;
    Some(
        files
            .into_iter()
            .filter(|(_, _, _, digest)| digest.is_none())
            .map(|(path, stat, plain, _)| {
                (
                    path.into_owned().into_os_string(),
                    crate::reads::Vouched { stat, plain },
                )
            })
            .collect(),
    )
}

/// Read the record at `path` ahead of a build, for whichever invocation
/// it was written; false when there is nothing whole and steady to read.
/// Uses no thread besides the caller's.
pub fn preload(path: &Path) -> bool {
    let Ok(Some((bytes, stat))) = crate::preload::read_steady(path) else {
        return false;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return false;
    };
    let Some(invocation) = text
        .strip_prefix(HEADER)
        .and_then(|rest| rest.strip_prefix("\ninvocation "))
        .and_then(|rest| rest.split('\n').next())
    else {
        return false;
    };
    let Some(stats) = listed_stats(&text, invocation) else {
        return false;
    };
    crate::preload::put(path, stat, (invocation.to_string(), stats));
    true
}

/// Whether each of `files` still holds, by the rule [`check`] applies to
/// a whole record.
pub fn all_hold(files: &[&Listed]) -> bool {
    let files: Files<'_> = files
        .iter()
        .map(|l| {
            (
                Cow::Borrowed(l.path.as_path()),
                l.stat,
                l.plain,
                l.digest.as_deref(),
            )
        })
        .collect();
    all_unchanged(&files)
}

/// Whether every file has its recorded stat (and each plain one is still
/// a regular file, not a symlink to one: a regular file's `lstat` is its
/// `stat`, so that takes one call).
fn all_unchanged(files: &Files) -> bool {
    // The record lists the most recently modified files first (see
    // `save`): after an edit, the first few stats usually find it, before
    // the rest are checked on every core.
    let dirs = crate::dir_stat::DirStats::new();
    let unchanged = |file: &(Cow<'_, Path>, Stat, bool, Option<&str>)| unchanged(&dirs, file);
    let (recent, rest) = files.split_at(files.len().min(RECENT_FIRST));
    recent.iter().all(unchanged) && rest.par_iter().all(unchanged)
}

/// How many of the most recently modified files are checked one by one
/// before the rest are checked in parallel.
const RECENT_FIRST: usize = 64;

fn unchanged(
    dirs: &crate::dir_stat::DirStats,
    (file, recorded, plain, digest): &(Cow<'_, Path>, Stat, bool, Option<&str>),
) -> bool {
    let now = match dirs.stat(file, !*plain) {
        Some((stat, kind)) if !*plain || kind == crate::dir_stat::Kind::File => stat,
        _ => return false,
    };
    now == *recorded
        && digest.is_none_or(|digest| {
            blake3::Hash::from_hex(digest)
                .is_ok_and(|hash| crate::stat_cache::holds_content(file, recorded, &hash))
        })
}

/// (path, recorded stat, must be a plain file, content digest); paths
/// borrow from the record's text unless they needed unescaping.
type Files<'a> = Vec<(Cow<'a, Path>, Stat, bool, Option<&'a str>)>;

/// The record's nodes and, with `with_files`, its files (else their
/// lines are skipped unread: the checksum still covers them).
fn parse<'a>(
    text: &'a str,
    invocation: &str,
    with_files: bool,
) -> Option<(Vec<NodeLine>, Files<'a>)> {
    let text = crate::file_stat::checked_body(text)?;
    let mut lines = text.split('\n');
    if lines.next()? != HEADER || lines.next()? != format!("invocation {invocation}") {
        return None;
    }
    let mut nodes: Vec<NodeLine> = Vec::new();
    let mut files = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "node" => {
                let (key, rest) = rest.split_once(' ')?;
                let (flags, id) = rest.split_once(' ')?;
                let (started, no_metrics) = match flags {
                    "s-" => (true, true),
                    "sm" => (true, false),
                    "--" => (false, true),
                    "-m" => (false, false),
                    _ => return None,
                };
                nodes.push(NodeLine {
                    id: unescape_text(id)?,
                    key: (key != "-").then(|| key.to_string()),
                    started,
                    skipped: None,
                    report: None,
                    no_metrics,
                });
            }
            "skip" => nodes.last_mut()?.skipped = Some(unescape_text(rest)?),
            "report" => nodes.last_mut()?.report = Some(unescape_path(rest)?),
            "file" | "digest" if !with_files => {}
            "file" => {
                let (stat, rest) = Stat::parse_prefix(rest)?;
                let (plain, path) = rest.split_once(' ')?;
                let plain = match plain {
                    "p" => true,
                    "-" => false,
                    _ => return None,
                };
                let path = if path.contains('%') {
                    Cow::Owned(unescape_path(path)?)
                } else {
                    Cow::Borrowed(Path::new(path))
                };
                files.push((path, stat, plain, None));
            }
            "digest" if rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()) => {
                let last = files.last_mut()?;
                if last.3.replace(rest).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some((nodes, files))
}

fn escape_text(text: &str) -> String {
    escape_path(Path::new(text))
}

fn unescape_text(text: &str) -> Option<String> {
    unescape_path(text)?.into_os_string().into_string().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stat_now(path: &Path) -> Stat {
        Stat::of(&fs::metadata(path).unwrap())
    }

    fn set_mtime(path: &Path, mtime: SystemTime) {
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }

    /// A file whose mtime lies safely before "now".
    fn old_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        set_mtime(&path, SystemTime::now() - Duration::from_secs(60));
        path
    }

    /// Save a record (invocation "inv") vouching for `file` as it is now;
    /// whether one was written, and where.
    fn record_of(dir: &Path, file: &Path, plain: bool) -> (bool, PathBuf) {
        let record = path(dir, "wf");
        let files = vec![(file.to_path_buf(), stat_now(file))];
        let plain: PlainOutputs = if plain {
            PlainOutputs::from_iter([file.as_os_str().into()])
        } else {
            PlainOutputs::default()
        };
        let written = save(
            &record,
            "inv",
            &nodes(),
            &files,
            &plain,
            SystemTime::now(),
            &Vouch {
                read_again: &|_, _| false,
                digest: &|_, _| None,
            },
        );
        (written.unwrap(), record)
    }

    fn nodes() -> Vec<NodeLine> {
        vec![
            NodeLine {
                id: "a b%c".into(),
                key: Some("k1".into()),
                started: true,
                skipped: None,
                report: Some(PathBuf::from("/x/report 1.html")),
                no_metrics: false,
            },
            NodeLine {
                id: "grid[3]".into(),
                key: None,
                started: false,
                skipped: Some("condition `a.x > 1` is false\nsecond".into()),
                report: None,
                no_metrics: true,
            },
        ]
    }

    #[test]
    fn a_record_round_trips_while_its_files_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let input = old_file(dir.path(), "in.txt", "one");
        let (written, record) = record_of(dir.path(), &input, true);
        assert!(written);
        assert_eq!(check(&record, "inv"), Some(nodes()));
        assert_eq!(check(&record, "other"), None, "another invocation");
    }

    #[test]
    fn any_changed_stat_voids_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let input = old_file(dir.path(), "in.txt", "one");
        let (_, record) = record_of(dir.path(), &input, false);
        fs::write(&input, "two").unwrap();
        assert_eq!(check(&record, "inv"), None, "edited");
        fs::remove_file(&input).unwrap();
        assert_eq!(check(&record, "inv"), None, "deleted");
    }

    #[test]
    fn a_rename_over_with_an_old_mtime_voids_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let input = old_file(dir.path(), "in.txt", "one");
        let (_, record) = record_of(dir.path(), &input, false);
        let other = old_file(dir.path(), "other.txt", "two");
        set_mtime(&other, fs::metadata(&input).unwrap().modified().unwrap());
        fs::rename(&other, &input).unwrap();
        assert_eq!(check(&record, "inv"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_plain_output_replaced_by_a_symlink_voids_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let target = old_file(dir.path(), "target.txt", "one");
        let output = dir.path().join("out.txt");
        fs::hard_link(&target, &output).unwrap();
        let (_, record) = record_of(dir.path(), &output, true);
        assert!(check(&record, "inv").is_some());
        // Same target, same stat through the link, but no longer a plain file.
        fs::remove_file(&output).unwrap();
        std::os::unix::fs::symlink(&target, &output).unwrap();
        assert_eq!(check(&record, "inv"), None);
    }

    #[test]
    fn recent_files_are_not_trusted_and_no_record_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.txt");
        fs::write(&fresh, "x").unwrap();
        let (written, record) = record_of(dir.path(), &fresh, false);
        assert!(!written);
        assert!(!record.exists());
    }

    /// A file too recent for its stat is recorded with the digest the
    /// build knew, and the record holds exactly while the content is that:
    /// a write in the same timestamp tick that keeps the stat voids it.
    #[test]
    fn a_recent_file_with_a_known_digest_is_checked_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.txt");
        fs::write(&fresh, "abc").unwrap();
        let stat = stat_now(&fresh);
        let record = path(dir.path(), "wf");
        let files = vec![(fresh.clone(), stat)];
        let save_with = |digest: &str| {
            let digest = digest.to_string();
            save(
                &record,
                "inv",
                &nodes(),
                &files,
                &PlainOutputs::from_iter([fresh.as_os_str().into()]),
                SystemTime::now(),
                &Vouch {
                    read_again: &|_, _| false,
                    digest: &|p, s| (p == fresh && *s == stat).then(|| digest.clone()),
                },
            )
            .unwrap()
        };
        let right = blake3::hash(b"abc").to_hex().to_string();
        assert!(save_with(&right));
        assert!(
            fs::read_to_string(&record)
                .unwrap()
                .contains(&format!("digest {right}\n"))
        );
        assert_eq!(check(&record, "inv"), Some(nodes()));
        // Too large to be read again by every build: no record.
        let mut big = files.clone();
        big[0].1.size = DIGEST_MAX + 1;
        let vouch = Vouch {
            read_again: &|_, _| false,
            digest: &|_, _| Some(right.clone()),
        };
        let plain = PlainOutputs::default();
        assert!(
            !save(
                &record,
                "inv",
                &nodes(),
                &big,
                &plain,
                SystemTime::now(),
                &vouch
            )
            .unwrap()
        );
        // The same stat with other bytes: what a same-tick write leaves.
        let wrong = blake3::hash(b"abd").to_hex().to_string();
        assert!(save_with(&wrong));
        assert_eq!(check(&record, "inv"), None);
        // Content edited and the mtime put back: the stat differs (ctime).
        assert!(save_with(&right));
        let mtime = fs::metadata(&fresh).unwrap().modified().unwrap();
        fs::write(&fresh, "xyz").unwrap();
        set_mtime(&fresh, mtime);
        assert_eq!(check(&record, "inv"), None);
    }

    #[test]
    fn malformed_records_are_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("uptodate");
        for text in [
            "",
            "admf-uptodate 4\n",
            "admf-uptodate 4\ninvocation inv\nbogus line\n",
            "admf-uptodate 4\ninvocation inv\nskip before any node\n",
            "admf-uptodate 4\ninvocation inv\nfile 1 2 3 x - /p\n",
            "admf-uptodate 4\ninvocation inv\nfile 1 2 3 4 q /p\n",
            "admf-uptodate 4\ninvocation inv\n",
            "admf-uptodate 4\ninvocation inv\ndigest 00\n",
        ] {
            fs::write(&record, text).unwrap();
            assert_eq!(check(&record, "inv"), None, "{text:?}");
        }
        let mut sealed = "admf-uptodate 4\ninvocation inv\n".to_string();
        crate::file_stat::push_checksum(&mut sealed);
        fs::write(&record, &sealed).unwrap();
        assert_eq!(check(&record, "inv"), Some(vec![]));
        // A node's flags are two: whether it got a job, whether its
        // entry may hold metrics.
        for (flags, parsed) in [("s", false), ("sx", false), ("m-", false), ("s-", true)] {
            let mut text = format!("admf-uptodate 4\ninvocation inv\nnode k {flags} a\n");
            crate::file_stat::push_checksum(&mut text);
            fs::write(&record, &text).unwrap();
            assert_eq!(check(&record, "inv").is_some(), parsed, "{text:?}");
        }
        fs::write(&record, &sealed).unwrap();
        // One changed byte anywhere voids it.
        fs::write(&record, sealed.replace("inv\n", "inw\n")).unwrap();
        assert_eq!(check(&record, "inw"), None);
    }

    #[test]
    fn invocations_differ_with_each_part_and_its_boundaries() {
        assert_ne!(invocation(&["a", "bc"]), invocation(&["ab", "c"]));
        assert_ne!(invocation(&["a"]), invocation(&["a", ""]));
        assert_eq!(invocation(&["a", "b"]), invocation(&["a", "b"]));
    }
}
