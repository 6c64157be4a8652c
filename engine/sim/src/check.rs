//! The invariants, checked as the simulation runs: what the counterparty was answered is
//! never lost, no MsgSeqNum is reused, one leader acts at a time (no other running
//! instance trusts a lease when one journals or answers), no answer after deposition,
//! and every recorded in-sync member holds what the leader answered.

use crate::disk::{Entry, Journal, RECORD};
use crate::lease::LeaseStore;
use std::collections::BTreeMap;

/// An answer the counterparty received: the record it acknowledged.
#[derive(Debug, Clone, Copy)]
struct Answered {
    position: u64,
    entry: Entry,
}

/// What the counterparty was answered, and what broke.
#[derive(Debug, Default)]
pub struct Ledger {
    answered: BTreeMap<u64, Answered>,
    /// Violations found (the run stops at the first).
    pub violations: Vec<String>,
    /// Orders answered.
    pub answers: u64,
    /// Leases taken.
    pub failovers: u64,
}

impl Ledger {
    fn violated(&mut self, now: u64, what: String) {
        self.violations.push(format!("at {now} ms: {what}"));
    }

    /// `name` takes the lease with `epoch`: its journal must hold every record the
    /// counterparty was answered for, where it was answered.
    pub fn check_takeover(&mut self, now: u64, name: &str, epoch: u64, journal: &Journal) {
        let lost = self
            .answered
            .values()
            .find(|a| journal.entry_at(a.position) != Some(a.entry))
            .copied();
        if let Some(a) = lost {
            self.violated(
                now,
                format!(
                    "acknowledged message lost: MsgSeqNum {} (order {}, answered under epoch {}) is not in {name}'s journal (which ends at {}) as it takes the lease with epoch {epoch}",
                    a.entry.seq, a.entry.order, a.entry.epoch, journal.end()
                ),
            );
        }
    }

    /// `name` acts (journals or answers) as the leader of `epoch`: no other running
    /// instance may trust a lease at the same instant (`others`: those that do, with
    /// their epochs).
    pub fn check_single_leader(
        &mut self,
        now: u64,
        name: &str,
        epoch: u64,
        others: &[(String, u64)],
    ) {
        if let Some((other, theirs)) = others.first() {
            self.violated(
                now,
                format!("two leaders at once: {name} acts under epoch {epoch} while {other} still trusts its lease of epoch {theirs}"),
            );
        }
    }

    /// `name`, leading with `epoch`, answers the record at `position`.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &mut self,
        now: u64,
        name: &str,
        epoch: u64,
        position: u64,
        entry: Entry,
        store: &LeaseStore,
        leader: &Journal,
        members: &[&Journal],
    ) {
        if store.epoch != epoch {
            self.violated(
                now,
                format!("answer after deposition: {name} answered MsgSeqNum {} under epoch {epoch} while the store had granted epoch {}", entry.seq, store.epoch),
            );
        }
        if let Some(before) = self.answered.get(&entry.seq) {
            if before.entry != entry {
                let before = before.entry;
                self.violated(
                    now,
                    format!(
                        "MsgSeqNum {} reused: answered for order {} under epoch {}, now for order {} under epoch {epoch}",
                        entry.seq, before.order, before.epoch, entry.order
                    ),
                );
            }
        }
        let end = position + RECORD as u64;
        for m in members {
            let agrees =
                m.durable() >= end && m.bytes()[..end as usize] == leader.bytes()[..end as usize];
            if !agrees {
                self.violated(
                    now,
                    format!("{name} answered MsgSeqNum {} at {position}, which an in-sync member does not hold durably", entry.seq),
                );
                break;
            }
        }
        self.answers += 1;
        self.answered
            .insert(entry.seq, Answered { position, entry });
    }
}
