//! The dedup keys of stored telemetry, in memory: for each terminal, the runs of consecutive
//! record numbers stored, each run tagged with the UTC day (of the rows' receive time) it
//! belongs to.
//!
//! A data box numbers its uploads 1, 2, 3, ... and resends the ones it saw no
//! acknowledgement for, so a terminal's stored records are a handful of runs (usually one per
//! day): a few bytes per terminal, where a unique index on (terminal, record) holds an entry
//! per row and takes every insert at a random place (one hot page per terminal, which is what
//! made a big telemetry table slow). The set is exact: a record is a duplicate only if that
//! very record is stored (a gap left by a batch the store refused is filled when the box
//! resends it), never because it is lower than the newest.
//!
//! Runs never span two days, so retention forgets keys a whole day at a time, with the raw
//! rows of that day: a record counter that wraps (24 bits) or restarts meets no stale key.
//!
//! Changes are transactional: [`StoredKeys::insert`] remembers each terminal's runs as they
//! were before its first change; after the database transaction, [`StoredKeys::commit`]
//! forgets them, or [`StoredKeys::rollback`] puts them back. The database copy of the keys is
//! written less often than rows are (a store may flush it every few seconds, with the rows'
//! own table telling what came since): [`StoredKeys::changes`] lists what that copy needs
//! since [`StoredKeys::flushed`] was last called.

use std::collections::HashMap;

/// Milliseconds in a day: runs never span two.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The UTC day (since the epoch) of a time in milliseconds.
pub(crate) fn day_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS)
}

/// Records `first..=last` of one terminal, stored with receive times on `day`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) day: i64,
}

/// What the database copy of the keys needs after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyChange {
    /// Store this run (a new one, or one whose `first` is unchanged and `last` or day moved).
    Put { terminal: u32, run: Run },
    /// The run starting at `first` is gone (merged into another, or started lower).
    Delete { terminal: u32, first: u32 },
}

/// Every terminal's runs; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct StoredKeys {
    /// Per terminal, disjoint runs sorted by `first`.
    runs: HashMap<u32, Vec<Run>>,
    /// Terminals changed since the last commit or rollback, with their runs before.
    before: HashMap<u32, Vec<Run>>,
    /// Terminals changed by committed transactions since the last flush, with their runs as
    /// the database copy holds them.
    unflushed: HashMap<u32, Vec<Run>>,
}

/// Why stored runs cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Overlap {
    pub(crate) terminal: u32,
    pub(crate) a: Run,
    pub(crate) b: Run,
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "terminal {}: stored record runs {}..={} and {}..={} overlap",
            self.terminal, self.a.first, self.a.last, self.b.first, self.b.last
        )
    }
}

impl StoredKeys {
    /// The keys from stored runs (any order); `Err` if two runs of a terminal overlap or one
    /// is reversed (a hand-edited database).
    pub(crate) fn from_runs(
        runs: impl IntoIterator<Item = (u32, Run)>,
    ) -> Result<StoredKeys, Overlap> {
        let mut keys = StoredKeys::default();
        for (terminal, run) in runs {
            keys.runs.entry(terminal).or_default().push(run);
        }
        for (&terminal, runs) in &mut keys.runs {
            runs.sort_unstable_by_key(|r| r.first);
            for run in runs.iter() {
                if run.first > run.last {
                    return Err(Overlap {
                        terminal,
                        a: *run,
                        b: *run,
                    });
                }
            }
            if let Some(pair) = runs.windows(2).find(|w| w[0].last >= w[1].first) {
                return Err(Overlap {
                    terminal,
                    a: pair[0],
                    b: pair[1],
                });
            }
        }
        Ok(keys)
    }

    /// Terminals known.
    #[cfg(test)]
    pub(crate) fn terminals(&self) -> usize {
        self.runs.len()
    }

    /// Whether `record` of `terminal` is stored.
    pub(crate) fn contains(&self, terminal: u32, record: u32) -> bool {
        self.runs
            .get(&terminal)
            .is_some_and(|runs| covering(runs, record).is_some())
    }

    /// Adds `record` of `terminal` received on `day`; `false` (and nothing changes) if it is
    /// stored already.
    pub(crate) fn insert(&mut self, terminal: u32, record: u32, day: i64) -> bool {
        if self.contains(terminal, record) {
            return false;
        }
        let runs = self.runs.entry(terminal).or_default();
        self.before.entry(terminal).or_insert_with(|| runs.clone());
        add(runs, record, day);
        true
    }

    /// What the database copy needs to match the committed keys (changes since the last
    /// [`flushed`](Self::flushed)), deletions first. Call between transactions.
    pub(crate) fn changes(&self) -> Vec<KeyChange> {
        let mut deletes = Vec::new();
        let mut puts = Vec::new();
        for (&terminal, stored) in &self.unflushed {
            let now = self.runs.get(&terminal).map_or(&[][..], Vec::as_slice);
            for run in stored {
                if now.binary_search_by_key(&run.first, |r| r.first).is_err() {
                    deletes.push(KeyChange::Delete {
                        terminal,
                        first: run.first,
                    });
                }
            }
            for run in now {
                let unchanged = stored
                    .binary_search_by_key(&run.first, |r| r.first)
                    .is_ok_and(|i| stored[i] == *run);
                if !unchanged {
                    puts.push(KeyChange::Put {
                        terminal,
                        run: *run,
                    });
                }
            }
        }
        deletes.append(&mut puts);
        deletes
    }

    /// The transaction committed: keep its changes (to be flushed).
    pub(crate) fn commit(&mut self) {
        for (terminal, before) in self.before.drain() {
            self.unflushed.entry(terminal).or_insert(before);
        }
    }

    /// The database copy now holds every committed change ([`changes`](Self::changes) was
    /// written and committed).
    pub(crate) fn flushed(&mut self) {
        self.unflushed.clear();
    }

    /// Whether committed changes wait for a flush.
    pub(crate) fn has_unflushed(&self) -> bool {
        !self.unflushed.is_empty()
    }

    /// The changes were not stored: back to the last commit.
    pub(crate) fn rollback(&mut self) {
        for (terminal, runs) in self.before.drain() {
            if runs.is_empty() {
                self.runs.remove(&terminal);
            } else {
                self.runs.insert(terminal, runs);
            }
        }
    }

    /// Forgets the runs of days before `day` (their rows are gone); returns how many.
    pub(crate) fn forget_before(&mut self, day: i64) -> u64 {
        let mut forgotten = 0;
        self.runs.retain(|_, runs| {
            let had = runs.len();
            runs.retain(|r| r.day >= day);
            forgotten += (had - runs.len()) as u64;
            !runs.is_empty()
        });
        forgotten
    }
}

/// The index of the run holding `record`.
fn covering(runs: &[Run], record: u32) -> Option<usize> {
    let after = runs.partition_point(|r| r.first <= record);
    let index = after.checked_sub(1)?;
    (runs[index].last >= record).then_some(index)
}

/// Adds a record no run holds: extends the run that ends right below it or starts right
/// above it on the same day (merging the two when it fills the gap between them), or starts
/// a run.
fn add(runs: &mut Vec<Run>, record: u32, day: i64) {
    let at = runs.partition_point(|r| r.first < record);
    let joins_below =
        at > 0 && runs[at - 1].day == day && runs[at - 1].last.checked_add(1) == Some(record);
    let joins_above =
        at < runs.len() && runs[at].day == day && record.checked_add(1) == Some(runs[at].first);
    match (joins_below, joins_above) {
        (true, true) => {
            runs[at - 1].last = runs[at].last;
            runs.remove(at);
        }
        (true, false) => runs[at - 1].last = record,
        (false, true) => runs[at].first = record,
        (false, false) => runs.insert(
            at,
            Run {
                first: record,
                last: record,
                day,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: u32, last: u32, day: i64) -> Run {
        Run { first, last, day }
    }

    fn runs_of(keys: &StoredKeys, terminal: u32) -> Vec<Run> {
        keys.runs.get(&terminal).cloned().unwrap_or_default()
    }

    #[test]
    fn consecutive_records_make_one_run_and_repeats_are_duplicates() {
        let mut keys = StoredKeys::default();
        for record in 1..=100 {
            assert!(keys.insert(7, record, 5));
        }
        assert!(!keys.insert(7, 50, 5), "stored already");
        assert!(!keys.insert(7, 100, 6), "stored already, whatever the day");
        assert!(keys.insert(8, 50, 5), "another terminal");
        assert_eq!(runs_of(&keys, 7), vec![run(1, 100, 5)]);
        assert!(keys.contains(7, 1) && keys.contains(7, 100));
        assert!(!keys.contains(7, 0) && !keys.contains(7, 101) && !keys.contains(9, 1));
    }

    #[test]
    fn a_gap_is_not_a_duplicate_and_filling_it_merges() {
        let mut keys = StoredKeys::default();
        for record in [1, 2, 3, 5, 6] {
            assert!(keys.insert(1, record, 0));
        }
        assert_eq!(runs_of(&keys, 1), vec![run(1, 3, 0), run(5, 6, 0)]);
        assert!(!keys.contains(1, 4));
        assert!(
            keys.insert(1, 4, 0),
            "a record below the newest, never stored"
        );
        assert_eq!(runs_of(&keys, 1), vec![run(1, 6, 0)]);
        // Extending downwards, and out of order.
        for record in [10, 9, 12, 11] {
            assert!(keys.insert(1, record, 0));
        }
        assert_eq!(runs_of(&keys, 1), vec![run(1, 6, 0), run(9, 12, 0)]);
    }

    #[test]
    fn runs_do_not_cross_days() {
        let mut keys = StoredKeys::default();
        assert!(keys.insert(1, 1, 10));
        assert!(keys.insert(1, 2, 11));
        assert!(keys.insert(1, 3, 11));
        assert_eq!(runs_of(&keys, 1), vec![run(1, 1, 10), run(2, 3, 11)]);
        assert_eq!(keys.forget_before(11), 1);
        assert!(keys.insert(1, 1, 12), "its day was forgotten");
        assert_eq!(keys.forget_before(13), 2);
        assert_eq!(keys.terminals(), 0);
    }

    #[test]
    fn changes_list_what_the_database_needs_and_rollback_restores() {
        let mut keys = StoredKeys::from_runs([(1, run(1, 3, 0)), (1, run(5, 6, 0))]).unwrap();
        assert!(keys.insert(1, 4, 0)); // merges the two runs
        assert!(keys.insert(2, 1, 0));
        assert!(keys.changes().is_empty(), "nothing committed yet");
        keys.rollback();
        assert_eq!(runs_of(&keys, 1), vec![run(1, 3, 0), run(5, 6, 0)]);
        assert!(!keys.contains(2, 1));
        assert!(!keys.has_unflushed());

        assert!(keys.insert(1, 4, 0));
        keys.commit();
        assert!(keys.insert(2, 1, 0));
        keys.commit();
        assert!(keys.insert(2, 2, 0));
        keys.rollback();
        let mut changes = keys.changes();
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            changes,
            vec![
                KeyChange::Delete {
                    terminal: 1,
                    first: 5
                },
                KeyChange::Put {
                    terminal: 1,
                    run: run(1, 6, 0)
                },
                KeyChange::Put {
                    terminal: 2,
                    run: run(1, 1, 0)
                },
            ],
            "both committed transactions, not the rolled back one"
        );
        keys.flushed();
        assert!(keys.changes().is_empty() && !keys.has_unflushed());
        assert!(keys.insert(1, 7, 0));
        keys.commit();
        assert_eq!(
            keys.changes(),
            vec![KeyChange::Put {
                terminal: 1,
                run: run(1, 7, 0)
            }]
        );
        assert_eq!(runs_of(&keys, 1), vec![run(1, 7, 0)]);
    }

    #[test]
    fn a_run_that_starts_lower_is_deleted_and_put() {
        let mut keys = StoredKeys::from_runs([(1, run(5, 6, 0))]).unwrap();
        assert!(keys.insert(1, 4, 0));
        keys.commit();
        assert_eq!(
            keys.changes(),
            vec![
                KeyChange::Delete {
                    terminal: 1,
                    first: 5
                },
                KeyChange::Put {
                    terminal: 1,
                    run: run(4, 6, 0)
                },
            ]
        );
    }

    #[test]
    fn overlapping_stored_runs_are_refused() {
        let error = StoredKeys::from_runs([(3, run(1, 5, 0)), (3, run(5, 9, 1))]).unwrap_err();
        assert_eq!(error.terminal, 3);
        assert!(error.to_string().contains("overlap"), "{error}");
        assert!(StoredKeys::from_runs([(3, run(6, 5, 0))]).is_err());
        let keys = StoredKeys::from_runs([(3, run(6, 9, 0)), (3, run(1, 5, 0))]).unwrap();
        assert!(keys.contains(3, 5) && keys.contains(3, 6));
    }

    #[test]
    fn the_highest_record_numbers_do_not_overflow() {
        let mut keys = StoredKeys::default();
        assert!(keys.insert(1, u32::MAX, 0));
        assert!(keys.insert(1, u32::MAX - 1, 0));
        assert!(!keys.insert(1, u32::MAX, 0));
        assert_eq!(runs_of(&keys, 1), vec![run(u32::MAX - 1, u32::MAX, 0)]);
    }

    #[test]
    fn days_floor_before_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(-1), -1);
    }
}
