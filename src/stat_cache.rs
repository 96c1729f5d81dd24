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
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::file_stat::{Stat, escape_path, is_racy, system_time_ns, unescape_path};
use crate::reads::Reads;

const HEADER: &str = "admf-statcache 2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    stat: Stat,
    hash: [u8; 32],
}

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
    records: Mutex<HashMap<PathBuf, Record>>,
    dirty: AtomicBool,
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
        let records = fs::read_to_string(path)
            .ok()
            .and_then(|text| parse(&text))
            .unwrap_or_default();
        StatCache {
            path: Some(path.to_path_buf()),
            records: Mutex::new(records),
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

    /// [`StatCache::hash_file`], with the stat the file had when it was
    /// hashed (what a later build compares to know it is unchanged).
    pub fn hash_file_stat(&self, path: &Path) -> io::Result<(String, Stat)> {
        let abs = std::path::absolute(path)?;
        let before = Stat::of(&fs::metadata(&abs)?);
        if let Some(record) = self.lock().get(&abs)
            && record.stat == before
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.reads.note(&abs, before);
            return Ok((
                blake3::Hash::from_bytes(record.hash).to_hex().to_string(),
                before,
            ));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let hashed_at = now_ns();
        let mut file = File::open(&abs)?;
        let hash = hash_open_file(&mut file, before.size)?;
        let after = Stat::of(&file.metadata()?);
        let racy = is_racy(&before, hashed_at);
        if after == before {
            self.reads.note(&abs, before);
        } else {
            self.reads.note_unstable();
        }
        if after == before && !racy {
            let record = Record {
                stat: before,
                hash: *hash.as_bytes(),
            };
            if self.lock().insert(abs, record) != Some(record) {
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
        Ok((hash.to_hex().to_string(), before))
    }

    /// Writes the cache back to the path it was loaded from, if anything
    /// changed (temp file + rename). A no-op for [`StatCache::in_memory`].
    pub fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let text = {
            let records = self.lock();
            let mut entries: Vec<_> = records.iter().collect();
            // By bytes: `Path` compares component by component, much slower.
            entries.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
            let mut text = String::with_capacity(entries.len() * 160 + 32);
            text.push_str(HEADER);
            text.push('\n');
            for (p, r) in entries {
                let s = r.stat;
                text.push_str(&format!(
                    "{} {s} {}\n",
                    blake3::Hash::from_bytes(r.hash).to_hex(),
                    escape_path(p)
                ));
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
            self.dirty.store(false, Ordering::Relaxed);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// blake3 of everything `reader` yields, as 64 lowercase hex chars.
pub fn hash_reader(reader: impl io::Read) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(reader)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// blake3 of an open file of about `size` bytes. A small file is read
/// whole: hashing through a reader zeroes a 64 KiB buffer per call, which
/// dominated builds that hash thousands of small files.
fn hash_open_file(file: &mut File, size: u64) -> io::Result<blake3::Hash> {
    use std::io::Read;
    if size <= 64 * 1024 {
        let mut bytes = Vec::with_capacity(size as usize + 1);
        file.read_to_end(&mut bytes)?;
        return Ok(blake3::hash(&bytes));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(hasher.finalize())
}

fn now_ns() -> i64 {
    system_time_ns(SystemTime::now())
}

fn parse(text: &str) -> Option<HashMap<PathBuf, Record>> {
    let text = crate::file_stat::checked_body(text)?;
    let mut lines = text.split('\n');
    if lines.next()? != HEADER {
        return None;
    }
    let mut records = HashMap::with_capacity(text.bytes().filter(|&b| b == b'\n').count());
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let mut fields = line.splitn(7, ' ');
        let hash = blake3::Hash::from_hex(fields.next()?).ok()?;
        let stat = Stat::parse(&mut fields)?;
        let path = unescape_path(fields.next()?)?;
        records.insert(
            path,
            Record {
                stat,
                hash: *hash.as_bytes(),
            },
        );
    }
    Some(records)
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
                .get(Path::new(&file(i)))
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
}
