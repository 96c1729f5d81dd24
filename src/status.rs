//! What became of a selected node in one build. One vocabulary for the
//! progress lines, the summary table, `events.jsonl`, `--json` and the
//! run ledger, which all print these names.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Executed in this build and committed.
    Ran,
    /// Its entry was found (or the up-to-date record vouched for it).
    Cached,
    /// Its `when:` condition was false, or an upstream was skipped.
    Skipped,
    Failed,
    /// Never started: downstream of a failure, or the build was stopped.
    NotRun,
}

impl Status {
    /// Every status, in the order totals are printed.
    pub const ALL: [Status; 5] = [
        Status::Ran,
        Status::Cached,
        Status::Skipped,
        Status::Failed,
        Status::NotRun,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Ran => "ran",
            Status::Cached => "cached",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::NotRun => "not_run",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The position in [`Status::ALL`], for tallies.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_index_follows_the_order() {
        for (i, s) in Status::ALL.into_iter().enumerate() {
            assert_eq!(Status::parse(s.name()), Some(s));
            assert_eq!(s.index(), i);
        }
        assert_eq!(Status::parse("not run"), None);
        assert_eq!(Status::NotRun.to_string(), "not_run");
    }
}
