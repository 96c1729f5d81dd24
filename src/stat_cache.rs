//! The stat cache: remembers each file's blake3 together with its stat
//! (size, mtime, inode, device, ctime), so a no-op build never rereads a file
//! that has not changed.
//!
//! # Trust rule
//!
//! A cached hash is used when size, mtime (ns), inode, device and ctime
//! (ns) all match. Content replaced with the mtime set back (`touch -d`)
//! has a new ctime, so it is hashed again; only a change of the system
//! clock or a write to the raw device keeps all five, and that is where a
//! stat is trusted. Bit rot that no write caused keeps the stat too: the
//! store's blob files are hashed again by `admf cache verify`, and every
//! byte an entry hands out through [`crate::store::Entry::read`] is
//! hashed as it is read.
//!
//! Racy-clean files, as git calls them, are never recorded: if the mtime is
//! too close to the moment of hashing ([`crate::file_stat::is_racy`]), a
//! later edit in the same timestamp tick could keep size and mtime, so the
//! hash is returned but not remembered. Nor is a file whose stat changed
//! while it was being hashed.
//!
//! # File format
//!
//! UTF-8 text, one record per line, loaded in one read:
//!
//! ```text
//! admf-statcache 2
//! <blake3 hex> <size> <mtime ns> <inode> <device> <ctime ns> <absolute path>
//! ```
//!
//! The path is last and runs to the end of the line; `%`, newline and
//! carriage return in it are written `%25`, `%0A`, `%0D`. The last line is
//! `sum <blake3 of every byte before it>`
//! ([`crate::file_stat::push_checksum`]). A missing file,
//! a different header or any malformed line makes the whole cache load
//! empty (never an error). [`StatCache::save`] writes a temp file beside
//! it and renames it into place, and does nothing if nothing changed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::file_stat::{Stat, is_racy, system_time_ns, unescape_path};
use crate::reads::Reads;

const HEADER: &str = "admf-statcache 2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    stat: Stat,
    hash: [u8; 32],
}

/// The records by path, keyed by the path's bytes. Fx rather than
/// SipHash: a build looks up every file it hashes, and `admf serve`
/// inserts every record of the file again whenever it reads it; bytes
/// rather than `Path`, whose hash and comparison go component by
/// component (a node with ten thousand upstream files looks up each).
/// Paths are absolute as `std::path::absolute` makes them, so one path
/// has one spelling; another spelling would be a miss, hashed again.
type Records = rustc_hash::FxHashMap<OsString, Record>;

/// How often the cache answered without reading the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatCacheCounts {
    /// Hashes served from the cache.
    pub hits: u64,
    /// Files read and hashed.
    pub misses: u64,
}

/// A persistent map path → (stat, blake3). Thread-safe: share it by `&`.
#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    records: Mutex<Records>,
    dirty: AtomicBool,
    /// Files recorded or re-recorded since the cache was read, in order:
    /// what [`StatCache::save`] appends.
    changed: Mutex<Vec<PathBuf>>,
    /// Where the file ended when it was read, to append to it.
    append_at: Mutex<Option<crate::file_stat::AppendPoint>>,
    /// Files hashed while racy, with the stat and hash they had: what
    /// [`StatCache::still_hashes_to`] checks again before a record
    /// vouches for them.
    racy: Mutex<HashMap<PathBuf, Record>>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Where each file hashed through the cache is noted as read.
    reads: Reads,
}

impl StatCache {
    /// Loads the cache stored at `path`; missing or corrupt → empty.
    /// [`StatCache::save`] writes back to the same path. Every file hashed
    /// through it is noted in `reads`.
    pub fn load(path: &Path, reads: Reads) -> StatCache {
        // A copy read ahead (`admf serve`) stands for the file while the
        // file is as it was read.
        let (records, append_at) = crate::preload::take::<Loaded>(path)
            .or_else(|| read(path))
            .unwrap_or_default();
        StatCache {
            path: Some(path.to_path_buf()),
            records: Mutex::new(records),
            append_at: Mutex::new(append_at),
            reads,
            ..StatCache::default()
        }
    }

    /// The reads the files hashed through this cache are noted in.
    pub fn reads(&self) -> &Reads {
        &self.reads
    }

    /// An empty cache that is never saved (used to rehash everything),
    /// noting its reads in a list of its own that no build rests on.
    pub fn in_memory() -> StatCache {
        StatCache::default()
    }

    /// Number of remembered files.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no file is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cache hits and misses since this cache was created.
    pub fn counts(&self) -> StatCacheCounts {
        StatCacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The blake3 (64 lowercase hex chars) of the file at `path`, from the
    /// cache when its stat is unchanged, else by reading it (and then
    /// remembering it, unless it is racy-clean).
    pub fn hash_file(&self, path: &Path) -> io::Result<String> {
        self.hash_file_stat(path).map(|(hash, _)| hash)
    }

    /// The stat of `path` when it is a plain file (not a symlink to one)
    /// whose digest is `blake3_hex`: when the cache knows its stat, one
    /// stat taken through the build's directory handles
    /// ([`Reads::plain_file_stat`]) answers it, the digests compared as
    /// bytes; else it is hashed as [`StatCache::hash_file`] does. `None`
    /// when it is not a plain file, cannot be read or holds other bytes.
    /// For a check made of many files at once (the workspace outputs of
    /// thousands of upstream nodes), where a stat of each full path twice
    /// was most of the cost.
    ///
    /// `now`: the files known to still have the stat `admf serve` vouched
    /// for; such a file's stat is taken from there rather than stat'ed.
    pub fn plain_file_holding(
        &self,
        path: &Path,
        blake3_hex: &str,
        now: Option<&crate::reads::StillVouched>,
    ) -> Option<Stat> {
        let wanted = blake3::Hash::from_hex(blake3_hex).ok()?;
        let abs = std::path::absolute(path).ok()?;
        let stat = match now.and_then(|now| now.plain_stat(&abs)) {
            Some(stat) => stat,
            None => self.reads.plain_file_stat(&abs)?,
        };
        if let Some(record) = self.lock().get(abs.as_os_str())
            && record.stat == stat
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.reads.note(&abs, stat);
            return (blake3::Hash::from_bytes(record.hash) == wanted).then_some(stat);
        }
        // Hashed from the stat just taken (no second stat of the path):
        // replaced by something else before it was read through, it is
        // no file this answer can be about.
        let (hash, stable) = self.hash_unknown(&abs, stat).ok()?;
        (stable && hash == wanted).then_some(stat)
    }

    /// [`StatCache::hash_file`], with the stat the file had when it was
    /// hashed (what a later build compares to know it is unchanged).
    pub fn hash_file_stat(&self, path: &Path) -> io::Result<(String, Stat)> {
        let abs = std::path::absolute(path)?;
        let before = Stat::of(&fs::metadata(&abs)?);
        if let Some(record) = self.lock().get(abs.as_os_str())
            && record.stat == before
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.reads.note(&abs, before);
            return Ok((
                blake3::Hash::from_bytes(record.hash).to_hex().to_string(),
                before,
            ));
        }
        let (hash, _) = self.hash_unknown(&abs, before)?;
        Ok((hash.to_hex().to_string(), before))
    }

    /// The digest of `abs`, a file the cache does not know with the stat
    /// `before` (taken just now): read and hashed, and remembered unless
    /// racy. Also whether the file still had `before` once read (the
    /// handle's stat); when not, the read is noted unstable and nothing
    /// is remembered.
    fn hash_unknown(&self, abs: &Path, before: Stat) -> io::Result<(blake3::Hash, bool)> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let hashed_at = now_ns();
        let mut file = File::open(abs)?;
        let hash = hash_open_file(&mut file, before.size)?;
        let after = Stat::of(&file.metadata()?);
        let racy = is_racy(&before, hashed_at);
        if after == before {
            self.reads.note(abs, before);
        } else {
            self.reads.note_unstable();
        }
        let record = Record {
            stat: before,
            hash: *hash.as_bytes(),
        };
        if after == before && racy {
            lock(&self.racy).insert(abs.to_path_buf(), record);
        }
        if after == before && !racy {
            let mut records = self.lock();
            if records.get(abs.as_os_str()) != Some(&record) {
                records.insert(abs.as_os_str().to_owned(), record);
                drop(records);
                lock(&self.changed).push(abs.to_path_buf());
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
        Ok((hash, after == before))
    }

    /// Writes the cache back to the path it was loaded from, if anything
    /// changed: the records hashed since it was read are appended as one
    /// segment when the file is still the one it was read from, else the
    /// whole cache is written to a temp file and renamed over it. A no-op
    /// for [`StatCache::in_memory`].
    pub fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut append_at = lock(&self.append_at);
        if let Some(point) = append_at.take() {
            let mut segment = String::new();
            {
                let records = self.lock();
                let mut changed = lock(&self.changed);
                changed.sort_unstable();
                changed.dedup();
                for file in changed.iter() {
                    if let Some(record) = records.get(file.as_os_str()) {
                        push_record(&mut segment, file, record);
                    }
                }
            }
            if crate::file_stat::append_segment(path, &point, &mut segment)? {
                lock(&self.changed).clear();
                self.dirty.store(false, Ordering::Relaxed);
                return Ok(());
            }
        }
        let text = {
            let records = self.lock();
            let mut entries: Vec<_> = records.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut text = String::with_capacity(entries.len() * 160 + 32);
            text.push_str(HEADER);
            text.push('\n');
            for (p, r) in entries {
                push_record(&mut text, Path::new(p), r);
            }
            crate::file_stat::push_checksum(&mut text);
            text
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let n = SAVES.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp.{}.{n}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let result = File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).map(|()| f))
            .and_then(|f| f.sync_all())
            .and_then(|()| fs::rename(&tmp, path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        } else {
            lock(&self.changed).clear();
            self.dirty.store(false, Ordering::Relaxed);
        }
        result
    }

    /// Whether `path`, which this cache hashed while it was racy (modified
    /// too shortly before), still has `stat` and the very content it
    /// hashed then, read again now that it is no longer racy. Then the
    /// bytes the build used are the file's bytes as of now, and any later
    /// write gives it a later mtime: a record may vouch for it. A same-tick
    /// write in between shows as other content here.
    ///
    /// A file this cache recorded with `stat` needs no second read: it
    /// was recorded only once no write could keep its stat (measured from
    /// when it was hashed, which may be later than a build's start).
    pub fn still_hashes_to(&self, path: &Path, stat: &Stat) -> bool {
        if self
            .lock()
            .get(path.as_os_str())
            .is_some_and(|r| r.stat == *stat)
        {
            return true;
        }
        let Some(record) = lock(&self.racy).get(path).copied() else {
            return false;
        };
        record.stat == *stat
            && !is_racy(stat, now_ns())
            && holds_content(path, stat, &blake3::Hash::from_bytes(record.hash))
    }

    /// The blake3 this cache took of `path` while it was racy and had
    /// `stat`: the content the build used, for a record that compares it
    /// again later ([`crate::uptodate`]).
    pub fn racy_digest(&self, path: &Path, stat: &Stat) -> Option<String> {
        let record = lock(&self.racy).get(path).copied()?;
        (record.stat == *stat).then(|| blake3::Hash::from_bytes(record.hash).to_hex().to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// blake3 of everything `reader` yields, as 64 lowercase hex chars.
pub fn hash_reader(reader: impl io::Read) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(reader)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Whether the file at `path`, which has `stat`, holds the content whose
/// blake3 is `expected`: read while its stat stays `stat`.
pub(crate) fn holds_content(path: &Path, stat: &Stat, expected: &blake3::Hash) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let same_stat = |file: &File| file.metadata().is_ok_and(|m| Stat::of(&m) == *stat);
    same_stat(&file)
        && hash_open_file(&mut file, stat.size).is_ok_and(|h| h == *expected)
        && same_stat(&file)
}

/// blake3 of an open file of about `size` bytes. A small file is read
/// whole: hashing through a reader zeroes a 64 KiB buffer per call, which
/// dominated builds that hash thousands of small files.
pub(crate) fn hash_open_file(file: &mut File, size: u64) -> io::Result<blake3::Hash> {
    if size <= 64 * 1024 {
        return Ok(blake3::hash(&crate::file_stat::read_rest(file, size)?));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(hasher.finalize())
}

fn now_ns() -> i64 {
    system_time_ns(SystemTime::now())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn push_record(text: &mut String, path: &Path, record: &Record) {
    text.push_str(blake3::Hash::from_bytes(record.hash).to_hex().as_str());
    text.push(' ');
    crate::file_stat::push_stat(text, &record.stat);
    text.push(' ');
    crate::file_stat::push_escaped_path(text, path);
    text.push('\n');
}

/// The records of the cache at `path` (later segments' records replace
/// earlier ones), and where to append to it.
type Loaded = (Records, Option<crate::file_stat::AppendPoint>);

/// Read the stat cache at `path` ahead of a build; false when there is
/// nothing whole and steady to read. Uses no thread besides the caller's.
pub fn preload(path: &Path) -> bool {
    if preload_appended(path) {
        return true;
    }
    let Ok(Some((bytes, stat))) = crate::preload::read_steady(path) else {
        return false;
    };
    let (Ok(text), Ok(meta)) = (String::from_utf8(bytes), fs::metadata(path)) else {
        return false;
    };
    // The metadata names the file found steady (where a later segment may
    // be appended), not one that replaced it since.
    if Stat::of(&meta) != stat {
        return false;
    }
    let Some(loaded) = parse(&text, &meta) else {
        return false;
    };
    crate::preload::put(path, stat, loaded);
    true
}

/// Brings the copy of the cache at `path` read ahead before up to the
/// file by the segments a build appended to it since (a build appends
/// what it hashed), reading and parsing only those; false when the file
/// is not that file grown by whole sealed segments
/// ([`crate::file_stat::appended_segments`]) and must be read whole.
fn preload_appended(path: &Path) -> bool {
    crate::preload::update::<Loaded>(path, |(records, point)| {
        let at = point.as_ref()?;
        let (tail, stat) = crate::preload::read_steady_from(path, at.end()).ok()??;
        if !at.is_of(&stat) {
            return None;
        }
        let tail = std::str::from_utf8(&tail).ok()?;
        let (segments, grown) = crate::file_stat::appended_segments(at, tail)?;
        // Parsed whole before the copy is touched: a malformed segment
        // leaves it as it was (and the file is read whole).
        let mut added = Records::default();
        for segment in segments {
            parse_into(segment, &mut added)?;
        }
        records.extend(added);
        *point = Some(grown);
        Some(stat)
    })
}

fn read(path: &Path) -> Option<Loaded> {
    let mut file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    let mut text = String::with_capacity(meta.len() as usize + 1);
    io::Read::read_to_string(&mut file, &mut text).ok()?;
    parse(&text, &meta)
}

/// The records of a stat cache file's text, read with `meta`.
fn parse(text: &str, meta: &fs::Metadata) -> Option<Loaded> {
    let header = format!("{HEADER}\n");
    if !text.starts_with(&header) {
        return None;
    }
    let (segments, append_at) = crate::file_stat::sealed_segments(text, header.len(), meta);
    if segments.is_empty() {
        return None;
    }
    let lines: usize = segments
        .iter()
        .map(|s| s.bytes().filter(|&b| b == b'\n').count())
        .sum();
    let mut records = Records::with_capacity_and_hasher(lines, Default::default());
    for segment in segments {
        parse_into(segment, &mut records)?;
    }
    Some((records, append_at))
}

fn parse_into(text: &str, records: &mut Records) -> Option<()> {
    for line in text.split('\n') {
        if line.is_empty() {
            continue;
        }
        let (hash, rest) = line.split_once(' ')?;
        let hash = blake3::Hash::from_hex(hash).ok()?;
        let (stat, path) = Stat::parse_prefix(rest)?;
        let path = unescape_path(path)?;
        records.insert(
            path.into_os_string(),
            Record {
                stat,
                hash: *hash.as_bytes(),
            },
        );
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::FileTimes;
    use std::time::{Duration, UNIX_EPOCH};

    fn old_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_600_000_000)
    }

    fn write_old(path: &Path, bytes: &[u8], mtime: SystemTime) {
        fs::write(path, bytes).unwrap();
        let f = File::options().write(true).open(path).unwrap();
        f.set_times(FileTimes::new().set_modified(mtime)).unwrap();
    }

    #[test]
    fn unchanged_stat_serves_cached_hash_and_changed_mtime_rehashes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.csv");
        write_old(&file, b"aaaa", old_time());
        let cache = StatCache::load(&dir.path().join("statcache"), Reads::new());
        let first = cache.hash_file(&file).unwrap();
        assert_eq!(first, blake3::hash(b"aaaa").to_hex().to_string());
        assert_eq!(cache.counts().misses, 1);

        // Unchanged: served from the cache.
        assert_eq!(cache.hash_file(&file).unwrap(), first);
        assert_eq!(cache.counts().hits, 1);

        // Same size, mtime and inode (rewritten in place, mtime put back
        // as `touch -d` does): the ctime moved, so it is hashed again.
        write_old(&file, b"bbbb", old_time());
        let second = cache.hash_file(&file).unwrap();
        assert_eq!(second, blake3::hash(b"bbbb").to_hex().to_string());
        assert_eq!(cache.counts().misses, 2);

        // A different mtime triggers a rehash.
        write_old(&file, b"cccc", old_time() + Duration::from_secs(1));
        let third = cache.hash_file(&file).unwrap();
        assert_eq!(third, blake3::hash(b"cccc").to_hex().to_string());
        assert_eq!(cache.counts().misses, 3);
    }

    #[test]
    fn racy_clean_files_are_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fresh.txt");
        fs::write(&file, b"just written").unwrap();
        let cache = StatCache::in_memory();
        cache.hash_file(&file).unwrap();
        cache.hash_file(&file).unwrap();
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.counts().misses, 2);
    }

    #[test]
    fn save_and_load_round_trip_including_odd_paths() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["plain.csv", "with space %25.csv", "new\nline.csv"];
        let cache_path = dir.path().join("sub/statcache");
        let cache = StatCache::load(&cache_path, Reads::new());
        for name in names {
            write_old(&dir.path().join(name), name.as_bytes(), old_time());
            cache.hash_file(&dir.path().join(name)).unwrap();
        }
        cache.save().unwrap();
        let loaded = StatCache::load(&cache_path, Reads::new());
        assert_eq!(loaded.len(), names.len());
        for name in names {
            let hash = loaded.hash_file(&dir.path().join(name)).unwrap();
            assert_eq!(hash, blake3::hash(name.as_bytes()).to_hex().to_string());
        }
        assert_eq!(loaded.counts().hits, names.len() as u64);
        // Nothing changed: save does not rewrite the file.
        let before = fs::metadata(&cache_path).unwrap().modified().unwrap();
        loaded.save().unwrap();
        assert_eq!(
            fs::metadata(&cache_path).unwrap().modified().unwrap(),
            before
        );
    }

    #[test]
    fn missing_or_corrupt_files_load_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StatCache::load(&dir.path().join("absent"), Reads::new()).is_empty());
        let bad = dir.path().join("bad");
        fs::write(&bad, "admf-statcache 2\nnot a record\n").unwrap();
        assert!(StatCache::load(&bad, Reads::new()).is_empty());
        fs::write(&bad, "something else\n").unwrap();
        assert!(StatCache::load(&bad, Reads::new()).is_empty());
        fs::write(&bad, [0xff, 0xfe, 0x00]).unwrap();
        assert!(StatCache::load(&bad, Reads::new()).is_empty());
    }

    /// A cache as large as a big research tree's reads back record for
    /// record (its load time is a benchmark matter, not a test's).
    #[test]
    fn twenty_thousand_entries_load_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statcache");
        let file = |i: u64| format!("/home/user/research/data/symbols/file_{i:05}.csv");
        let mut text = format!("{HEADER}\n");
        for i in 0..20_000u64 {
            text.push_str(&format!(
                "{} {} {} {} 2049 {} {}\n",
                blake3::hash(&i.to_le_bytes()).to_hex(),
                1000 + i,
                1_700_000_000_000_000_000i64 + i as i64,
                100_000 + i,
                1_700_000_001_000_000_000i64 + i as i64,
                file(i)
            ));
        }
        crate::file_stat::push_checksum(&mut text);
        fs::write(&path, &text).unwrap();
        let cache = StatCache::load(&path, Reads::new());
        assert_eq!(cache.len(), 20_000);
        let records = cache.lock();
        for i in [0u64, 1, 9_999, 19_999] {
            let r = records
                .get(Path::new(&file(i)).as_os_str())
                .unwrap_or_else(|| panic!("entry {i} missing"));
            assert_eq!(r.hash, *blake3::hash(&i.to_le_bytes()).as_bytes());
            assert_eq!(
                r.stat,
                Stat {
                    size: 1000 + i,
                    mtime_ns: 1_700_000_000_000_000_000i64 + i as i64,
                    inode: 100_000 + i,
                    device: 2049,
                    ctime_ns: 1_700_000_001_000_000_000i64 + i as i64,
                }
            );
        }
    }

    #[test]
    fn concurrent_hashing_is_safe() {
        use rayon::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..64)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                write_old(&p, format!("content {i}").as_bytes(), old_time());
                p
            })
            .collect();
        let cache = StatCache::in_memory();
        let hashes: Vec<String> = files
            .par_iter()
            .map(|p| cache.hash_file(p).unwrap())
            .collect();
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(
                *h,
                blake3::hash(format!("content {i}").as_bytes())
                    .to_hex()
                    .to_string()
            );
        }
        assert_eq!(cache.len(), 64);
    }

    /// Three old files in a temporary directory and a stat cache (its
    /// path given) written whole with the first two hashed.
    fn two_of_three_files_cached() -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statcache");
        let files: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("f{i}"))).collect();
        for (i, f) in files.iter().enumerate() {
            write_old(f, format!("v{i}").as_bytes(), old_time());
        }
        let cache = StatCache::load(&path, Reads::new());
        cache.hash_file(&files[0]).unwrap();
        cache.hash_file(&files[1]).unwrap();
        cache.save().unwrap();
        (dir, path, files)
    }

    #[test]
    fn saves_append_what_was_hashed_and_read_back_as_a_whole_write() {
        let (_dir, path, files) = two_of_three_files_cached();
        let whole = fs::read_to_string(&path).unwrap();
        // Another process: one file edited, one new.
        let cache = StatCache::load(&path, Reads::new());
        write_old(&files[1], b"edited", old_time() + Duration::from_secs(5));
        cache.hash_file(&files[1]).unwrap();
        cache.hash_file(&files[2]).unwrap();
        cache.save().unwrap();
        let appended = fs::read_to_string(&path).unwrap();
        assert!(appended.starts_with(&whole), "appended, not rewritten");
        assert_eq!(
            appended.lines().filter(|l| l.starts_with("sum ")).count(),
            2
        );
        let back = StatCache::load(&path, Reads::new());
        assert_eq!(back.len(), 3);
        assert_eq!(
            back.hash_file(&files[1]).unwrap(),
            blake3::hash(b"edited").to_hex().to_string()
        );
        assert_eq!(back.counts().misses, 0);
        // A torn append: the records before it still load.
        fs::write(&path, &appended[..appended.len() - 10]).unwrap();
        assert_eq!(StatCache::load(&path, Reads::new()).len(), 2);
    }

    /// `admf serve` reading the cache again after a build appended to it
    /// parses only the appended segment, and ends with what a whole read
    /// gives; a file replaced since, or torn, is read whole instead.
    #[test]
    fn a_copy_read_ahead_takes_an_appended_segment_as_a_whole_read_would() {
        let (dir, path, files) = two_of_three_files_cached();
        set_mtime(&path, old_time());
        assert!(preload(&path));
        // A build (here: this process, with the copy set aside) appends.
        let kept = crate::preload::take::<Loaded>(&path).unwrap();
        let cache = StatCache::load(&path, Reads::new());
        write_old(&files[1], b"edited", old_time() + Duration::from_secs(5));
        cache.hash_file(&files[1]).unwrap();
        cache.hash_file(&files[2]).unwrap();
        cache.save().unwrap();
        set_mtime(&path, old_time());
        let put_back = |copy: &Loaded| {
            let stat = Stat::of(&fs::metadata(&path).unwrap());
            let before = Stat {
                size: kept.1.as_ref().unwrap().end(),
                ..stat
            };
            crate::preload::put(&path, before, (copy.0.clone(), copy.1.clone()));
        };
        put_back(&kept);
        assert!(preload_appended(&path));
        let whole = read(&path).unwrap();
        let copied = crate::preload::take::<Loaded>(&path).unwrap();
        assert_eq!(copied.0, whole.0);
        assert_eq!(copied.0.len(), 3);
        assert_eq!(copied.1.unwrap().end(), whole.1.unwrap().end());
        // The same file (inode) holding another cache, grown past where
        // the copy was read: no sum after that point matches the bytes
        // read then, so read whole.
        let text = fs::read_to_string(&path).unwrap();
        let other = dir.path().join("other");
        let cache = StatCache::load(&other, Reads::new());
        for f in files.iter().rev() {
            cache.hash_file(f).unwrap();
        }
        cache.save().unwrap();
        let other = fs::read(&other).unwrap();
        assert!(other.len() as u64 > kept.1.as_ref().unwrap().end());
        fs::write(&path, &other).unwrap();
        set_mtime(&path, old_time());
        put_back(&kept);
        assert!(!preload_appended(&path));
        // Replaced by a rename: another inode, read whole.
        fs::write(dir.path().join("renamed"), &text).unwrap();
        fs::rename(dir.path().join("renamed"), &path).unwrap();
        set_mtime(&path, old_time());
        put_back(&kept);
        assert!(!preload_appended(&path));
        // Torn: the appended segment lost its sum line.
        fs::write(&path, &text[..text.len() - 10]).unwrap();
        set_mtime(&path, old_time());
        put_back(&kept);
        assert!(!preload_appended(&path));
    }

    fn set_mtime(path: &Path, mtime: SystemTime) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }

    #[test]
    fn a_racy_file_is_vouched_for_only_while_its_content_is_the_one_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fresh.txt");
        fs::write(&file, b"one").unwrap();
        // An mtime just ahead of now: racy when hashed, whatever the load.
        let mtime = SystemTime::now() + Duration::from_millis(300);
        set_mtime(&file, mtime);
        let cache = StatCache::load(&dir.path().join("statcache"), Reads::new());
        let (_, stat) = cache.hash_file_stat(&file).unwrap();
        assert_eq!(cache.len(), 0, "racy: not recorded");
        assert!(!cache.still_hashes_to(&file, &stat), "still racy now");
        if let Ok(ahead) = mtime.duration_since(SystemTime::now()) {
            std::thread::sleep(ahead);
        }
        std::thread::sleep(crate::file_stat::FINE_RACY_WINDOW + Duration::from_millis(20));
        assert!(cache.still_hashes_to(&file, &stat));
        // Other bytes of the same size, the mtime set back: the stat differs
        // (ctime), and the content would too.
        fs::write(&file, b"two").unwrap();
        set_mtime(&file, mtime);
        assert!(!cache.still_hashes_to(&file, &stat));
        let now = Stat::of(&fs::metadata(&file).unwrap());
        assert!(!cache.still_hashes_to(&file, &now));
        assert!(!cache.still_hashes_to(&dir.path().join("never hashed"), &stat));
        // A file the cache recorded with this stat needs no second read.
        let old = dir.path().join("old.txt");
        write_old(&old, b"old", old_time());
        let (_, old_stat) = cache.hash_file_stat(&old).unwrap();
        assert!(cache.still_hashes_to(&old, &old_stat));
    }
}
