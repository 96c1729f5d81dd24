//! What a file looked like when it was read, and when that can be
//! trusted: the stat the stat cache, the up-to-date record and the lookup
//! cache compare, the one racy-window rule they share, and the escaping
//! their line-oriented files use for paths.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a file looked like when it was read.
///
/// The ctime is part of it: any write, `touch -d` that sets the mtime
/// back included, sets the ctime to the current time, and only a clock
/// change or a write to the raw device can set it back. So a file whose
/// content was replaced with its mtime restored is never taken as
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub device: u64,
    pub ctime_ns: i64,
}

/// `<size> <mtime ns> <inode> <device> <ctime ns>`: how the stat cache, the
/// up-to-date record, the graph cache and the node trace write a stat.
impl std::fmt::Display for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.size, self.mtime_ns, self.inode, self.device, self.ctime_ns
        )
    }
}

impl Stat {
    /// A stat as [`Stat`]'s `Display` writes it, from the next five fields.
    pub fn parse<'a>(fields: &mut impl Iterator<Item = &'a str>) -> Option<Stat> {
        Some(Stat {
            size: fields.next()?.parse().ok()?,
            mtime_ns: fields.next()?.parse().ok()?,
            inode: fields.next()?.parse().ok()?,
            device: fields.next()?.parse().ok()?,
            ctime_ns: fields.next()?.parse().ok()?,
        })
    }

    /// A stat as [`Stat`]'s `Display` writes it at the start of `text`,
    /// followed by one space, and the text after that space. What the
    /// bookkeeping files' loaders read for every line, so it walks the
    /// bytes once instead of splitting fields: digits only (a `-` first
    /// for the times), no `+`, no empty field.
    pub fn parse_prefix(text: &str) -> Option<(Stat, &str)> {
        let bytes = text.as_bytes();
        let mut at = 0;
        let size = unsigned_field(bytes, &mut at)?;
        let mtime_ns = signed_field(bytes, &mut at)?;
        let inode = unsigned_field(bytes, &mut at)?;
        let device = unsigned_field(bytes, &mut at)?;
        let ctime_ns = signed_field(bytes, &mut at)?;
        let stat = Stat {
            size,
            mtime_ns,
            inode,
            device,
            ctime_ns,
        };
        // `at` is just past an ASCII space, so a char boundary.
        Some((stat, &text[at..]))
    }

    /// The stat of `path` itself when it is a regular file (a symlink,
    /// even to one, is not).
    pub fn of_plain_file(path: &Path) -> Option<Stat> {
        fs::symlink_metadata(path)
            .ok()
            .filter(|m| m.file_type().is_file())
            .map(|m| Stat::of(&m))
    }

    pub fn of(meta: &fs::Metadata) -> Stat {
        let mtime_ns = meta.modified().map(system_time_ns).unwrap_or(0);
        #[cfg(unix)]
        let (inode, device, ctime_ns) = {
            use std::os::unix::fs::MetadataExt;
            let ctime_ns = meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec());
            (meta.ino(), meta.dev(), ctime_ns)
        };
        #[cfg(not(unix))]
        let (inode, device, ctime_ns) = (0, 0, 0);
        Stat {
            size: meta.len(),
            mtime_ns,
            inode,
            device,
            ctime_ns,
        }
    }
}

/// Files modified this recently before the moment of reading, on a file
/// system whose timestamps have whole seconds only, are racy: an edit in
/// the same tick could keep size and mtime.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The racy window on file systems whose timestamps have sub-second parts.
pub const FINE_RACY_WINDOW: Duration = Duration::from_millis(100);

/// Whether a file with `stat`, read at `read_at_ns`, could change again
/// without its stat showing it (mtime too close to the read, or in the
/// future). Such a stat proves nothing and is never recorded.
pub fn is_racy(stat: &Stat, read_at_ns: i64) -> bool {
    let window = if stat.mtime_ns % 1_000_000_000 == 0 {
        RACY_WINDOW
    } else {
        FINE_RACY_WINDOW
    };
    read_at_ns.saturating_sub(stat.mtime_ns) < window.as_nanos() as i64
}

/// Ends a bookkeeping file (the stat cache, the up-to-date record, the
/// graph cache, the node trace) with `sum <blake3 of every byte before
/// it>`, so that a line changed by anything but admf (a torn sector, a
/// stray edit, a forged record) voids the whole file instead of being
/// believed. Whoever can also recompute the sum can as well write the
/// store's index and blobs: that is not a threat these files guard
/// against.
pub fn push_checksum(text: &mut String) {
    let sum = blake3::hash(text.as_bytes());
    text.push_str("sum ");
    text.push_str(sum.to_hex().as_str());
    text.push('\n');
}

/// The text before the closing `sum` line that [`push_checksum`] wrote,
/// when the sum matches it.
pub fn checked_body(text: &str) -> Option<&str> {
    let last_start = text.strip_suffix('\n')?.rfind('\n').map_or(0, |i| i + 1);
    let (body, last) = text.split_at(last_start);
    let sum = last.strip_prefix("sum ")?.strip_suffix('\n')?;
    (blake3::hash(body.as_bytes()).to_hex().as_str() == sum).then_some(body)
}

/// Where a bookkeeping file of sealed segments ended when it was read:
/// what a later segment may be appended to (see [`sealed_segments`]).
#[derive(Debug, Clone)]
pub struct AppendPoint {
    len: u64,
    inode: u64,
    device: u64,
    /// Bytes up to the first `sum` line: the last time it was written whole.
    first_segment_len: u64,
    /// blake3 state over every byte of the file.
    hasher: blake3::Hasher,
}

/// Appended segments may add up to the first segment's size plus this
/// before the file is written whole again.
const APPEND_SLACK_BYTES: u64 = 64 * 1024;

/// The bodies of the sealed segments of `text`, a file read with `meta`
/// whose first `header_len` bytes are its header: each segment ends with
/// `sum <blake3 of every byte of the file before this line>`, and the
/// first one follows the header. Reading stops at the first segment
/// whose sum does not match or that has none (a torn append): the file
/// is taken as it was before that segment. The [`AppendPoint`] is given
/// when every byte of the file is sealed.
pub fn sealed_segments<'a>(
    text: &'a str,
    header_len: usize,
    meta: &fs::Metadata,
) -> (Vec<&'a str>, Option<AppendPoint>) {
    let mut hasher = blake3::Hasher::new();
    let (bodies, sealed, first_end) = scan_sealed(text, header_len, &mut hasher);
    let point = match first_end {
        Some(first_segment_len) if sealed == text.len() => {
            let stat = Stat::of(meta);
            Some(AppendPoint {
                len: text.len() as u64,
                inode: stat.inode,
                device: stat.device,
                first_segment_len: first_segment_len as u64,
                hasher,
            })
        }
        _ => None,
    };
    (bodies, point)
}

/// The bodies of the segments sealed in `tail`, the bytes a file grew by
/// after `point` was taken, and the point at its new end; `None` unless
/// every byte of `tail` is sealed. Each sum covers the whole file before
/// it, so sums that match the state `point` kept prove `tail` was
/// appended to the very bytes read then (a file written whole since
/// holds other sums, and is another inode besides: admf writes files
/// whole by renaming); a torn append gives `None` too.
pub fn appended_segments<'a>(
    point: &AppendPoint,
    tail: &'a str,
) -> Option<(Vec<&'a str>, AppendPoint)> {
    let mut hasher = point.hasher.clone();
    let (bodies, sealed, _) = scan_sealed(tail, 0, &mut hasher);
    (!bodies.is_empty() && sealed == tail.len()).then(|| {
        let grown = AppendPoint {
            len: point.len + tail.len() as u64,
            hasher,
            ..point.clone()
        };
        (bodies, grown)
    })
}

impl AppendPoint {
    /// Where the file ended when read to here.
    pub fn end(&self) -> u64 {
        self.len
    }

    /// Whether `stat` is of the file this point was taken from (same
    /// inode and device, no shorter).
    pub fn is_of(&self, stat: &Stat) -> bool {
        (stat.inode, stat.device) == (self.inode, self.device) && stat.size >= self.len
    }
}

/// The sealed segments of `text` from `body_start` on, `hasher` holding
/// the bytes of the file before `text` and taking every sealed byte of
/// it: their bodies, where the last one's sum line ends, and where the
/// first one's does.
fn scan_sealed<'a>(
    text: &'a str,
    body_start: usize,
    hasher: &mut blake3::Hasher,
) -> (Vec<&'a str>, usize, Option<usize>) {
    let mut bodies = Vec::new();
    let mut hashed = 0;
    let mut body_start = body_start;
    let mut first_end = None;
    let mut search = body_start;
    while search < text.len() {
        let sum_at = if text[search..].starts_with("sum ") {
            search
        } else {
            match text[search..].find("\nsum ") {
                Some(i) => search + i + 1,
                None => break,
            }
        };
        let Some(end) = text[sum_at..].find('\n').map(|i| sum_at + i) else {
            break;
        };
        hasher.update(&text.as_bytes()[hashed..sum_at]);
        if hasher.finalize().to_hex().as_str() != &text[sum_at + 4..end] {
            break;
        }
        hasher.update(&text.as_bytes()[sum_at..=end]);
        hashed = end + 1;
        bodies.push(&text[body_start..sum_at]);
        first_end.get_or_insert(hashed);
        body_start = hashed;
        search = hashed;
    }
    (bodies, body_start, first_end)
}

/// Append `segment` and its `sum` line to the file at `path`, when it is
/// still exactly the file `point` was read from and the appended segments
/// stay smaller than a whole write; `Ok(false)` otherwise (write it whole).
pub fn append_segment(path: &Path, point: &AppendPoint, segment: &mut String) -> io::Result<bool> {
    use std::io::Write;
    if point.len + segment.len() as u64 > 2 * point.first_segment_len + APPEND_SLACK_BYTES {
        return Ok(false);
    }
    let mut file = match fs::OpenOptions::new().append(true).open(path) {
        Ok(file) => file,
        Err(_) => return Ok(false),
    };
    // Two processes appending at once: the second finds the length
    // changed and writes the file whole instead.
    file.lock()?;
    let now = Stat::of(&file.metadata()?);
    if now.size != point.len || (now.inode, now.device) != (point.inode, point.device) {
        return Ok(false);
    }
    let mut hasher = point.hasher.clone();
    hasher.update(segment.as_bytes());
    segment.push_str("sum ");
    segment.push_str(hasher.finalize().to_hex().as_str());
    segment.push('\n');
    // A torn write leaves a segment without its sum, which the next read
    // ignores (and the next save then writes the file whole).
    file.write_all(segment.as_bytes())?;
    Ok(true)
}

/// The decimal digits at `*at` up to the next space, which `*at` is moved
/// past; `None` when there are none, another byte comes first, no space
/// follows or the number does not fit.
fn unsigned_field(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let start = *at;
    let mut value: u64 = 0;
    loop {
        let byte = *bytes.get(*at)?;
        *at += 1;
        match byte {
            b' ' if *at - 1 > start => return Some(value),
            b'0'..=b'9' => value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?,
            _ => return None,
        }
    }
}

/// [`unsigned_field`] with an optional `-` first, within `i64`.
fn signed_field(bytes: &[u8], at: &mut usize) -> Option<i64> {
    if bytes.get(*at) == Some(&b'-') {
        *at += 1;
        let magnitude = unsigned_field(bytes, at)?;
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(unsigned_field(bytes, at)?).ok()
    }
}

pub fn system_time_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

pub fn escape_path(path: &Path) -> String {
    let mut out = String::new();
    push_escaped_path(&mut out, path);
    out
}

/// Append `path` escaped as [`escape_path`] does, without a `String` of
/// its own: the bookkeeping files write tens of thousands of paths.
pub fn push_escaped_path(out: &mut String, path: &Path) {
    let text = path_text(path);
    if !text.contains(['%', '\n', '\r']) {
        out.push_str(&text);
        return;
    }
    out.reserve(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
}

/// Append `stat` as its `Display` writes it, without the formatting
/// machinery: the bookkeeping files write tens of thousands of stats.
pub fn push_stat(out: &mut String, stat: &Stat) {
    push_u64(out, stat.size);
    out.push(' ');
    push_i64(out, stat.mtime_ns);
    out.push(' ');
    push_u64(out, stat.inode);
    out.push(' ');
    push_u64(out, stat.device);
    out.push(' ');
    push_i64(out, stat.ctime_ns);
}

fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only.
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

pub fn unescape_path(text: &str) -> Option<PathBuf> {
    if !text.contains('%') {
        return Some(PathBuf::from(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    path_from_bytes(out)
}

#[cfg(unix)]
fn path_text(path: &Path) -> std::borrow::Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    // Non-UTF-8 bytes are kept as %XX so the path round-trips.
    match path.to_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => {
            let mut s = String::new();
            for chunk in path.as_os_str().as_bytes().utf8_chunks() {
                s.push_str(chunk.valid());
                for b in chunk.invalid() {
                    s.push_str(&format!("%{b:02X}"));
                }
            }
            std::borrow::Cow::Owned(s)
        }
    }
}

#[cfg(not(unix))]
fn path_text(path: &Path) -> std::borrow::Cow<'_, str> {
    path.to_string_lossy()
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    String::from_utf8(bytes).ok().map(PathBuf::from)
}

/// The bytes of `file` from where it is to its end, with room for
/// `expected` bytes and one more (which shows the end): what
/// `File::read_to_end` reads, without the `statx` and `lseek` it makes
/// first to size its buffer, which a caller that has just taken the
/// file's stat does not need (two of a cold node's few dozen syscalls per
/// file read).
pub fn read_rest(file: &mut std::fs::File, expected: u64) -> std::io::Result<Vec<u8>> {
    /// A `File` seen only as something to `read`: the generic
    /// `read_to_end`, not `File`'s own.
    struct Plain<'a>(&'a mut std::fs::File);
    impl std::io::Read for Plain<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).saturating_add(1));
    std::io::Read::read_to_end(&mut Plain(file), &mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_stat_writes_what_display_writes_and_parse_reads() {
        for stat in [
            Stat {
                size: 0,
                mtime_ns: 0,
                inode: 0,
                device: 0,
                ctime_ns: 0,
            },
            Stat {
                size: u64::MAX,
                mtime_ns: i64::MIN,
                inode: 10,
                device: 9,
                ctime_ns: i64::MAX,
            },
            Stat {
                size: 1,
                mtime_ns: -1_500_000_000,
                inode: u64::MAX,
                device: 1234567,
                ctime_ns: 1_764_500_000_123_456_789,
            },
        ] {
            let mut text = String::new();
            push_stat(&mut text, &stat);
            assert_eq!(text, stat.to_string());
            assert_eq!(Stat::parse(&mut text.split(' ')), Some(stat));
            text.push_str(" p /a b");
            assert_eq!(Stat::parse_prefix(&text), Some((stat, "p /a b")));
        }
    }

    fn stat() -> impl proptest::strategy::Strategy<Value = Stat> {
        use proptest::prelude::*;
        (
            any::<u64>(),
            any::<i64>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>(),
        )
            .prop_map(|(size, mtime_ns, inode, device, ctime_ns)| Stat {
                size,
                mtime_ns,
                inode,
                device,
                ctime_ns,
            })
    }

    proptest::proptest! {
        #[test]
        fn a_written_stat_reads_back_with_the_text_after_it(stat in stat(), rest in ".*") {
            let text = format!("{stat} {rest}");
            proptest::prop_assert_eq!(Stat::parse_prefix(&text), Some((stat, rest.as_str())));
        }

        /// On any text of digits, signs and spaces, the one-pass parse
        /// reads what the field-splitting parse reads, but for a `+`,
        /// which it refuses (admf never writes one).
        #[test]
        fn the_one_pass_parse_reads_what_splitting_reads(text in "[0-9 +-]{0,60}") {
            let split = {
                let mut fields = text.splitn(6, ' ');
                Stat::parse(&mut fields).and_then(|stat| Some((stat, fields.next()?)))
            };
            let prefix = Stat::parse_prefix(&text);
            match split {
                Some(_) if text.split(' ').take(5).any(|f| f.contains('+')) => {
                    proptest::prop_assert_eq!(prefix, None)
                }
                _ => proptest::prop_assert_eq!(prefix, split),
            }
        }
    }
}
