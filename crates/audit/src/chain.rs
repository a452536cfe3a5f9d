//! The hash chain: a canonical encoding of each entry, digests that link each entry to the
//! one before it, sealing of pending entries and an incremental verifier.
//!
//! `digest(n) = SHA-256( digest(n-1) as hex ‖ "\n" ‖ canonical(n) )`, with 64 zeros before
//! the first entry. `canonical` is a versioned, length-prefixed encoding of the chain
//! position and every stored field, so no two different entries encode alike.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::event::{AuditEntry, NewAuditEvent};

/// The digest before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The last sealed position and its digest, stored apart from the entries so that a chain
/// cut short at the end is noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// Sequence number of the last sealed entry (0 when empty).
    pub seq: i64,
    /// Its digest ([`GENESIS`] when empty).
    pub digest: String,
}

impl ChainHead {
    /// The head of an empty chain.
    #[must_use]
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            digest: GENESIS.to_owned(),
        }
    }
}

/// The fixed textual form of a timestamp inside the chain: UTC, microseconds, `Z`.
#[must_use]
pub fn chain_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The canonical bytes of an entry at position `seq`.
#[must_use]
pub fn canonical(seq: i64, event: &NewAuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + event.data.len());
    out.extend_from_slice(b"cc-audit-v1\n");
    field(&mut out, "seq", &seq.to_string());
    field(&mut out, "at", &chain_time(&event.occurred_at));
    field(&mut out, "actor", &event.actor.to_string());
    field(&mut out, "action", event.action.as_str());
    field(&mut out, "call", event.call_sid.as_deref().unwrap_or(""));
    field(
        &mut out,
        "agent",
        &event.agent_id.map(|a| a.to_string()).unwrap_or_default(),
    );
    field(&mut out, "data", &event.data);
    out
}

/// The digest of an entry at `seq` following `prev_digest`.
#[must_use]
pub fn digest(prev_digest: &str, seq: i64, event: &NewAuditEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_digest.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(seq, event));
    hex::encode(hasher.finalize())
}

/// Chain fields computed for one pending entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// Storage id of the entry.
    pub id: i64,
    /// Its new position.
    pub seq: i64,
    /// The previous digest.
    pub prev_digest: String,
    /// Its digest.
    pub digest: String,
}

impl Seal {
    /// The sealed entry: `event` (stored under this seal's id) at its place in the chain.
    #[must_use]
    pub fn into_entry(self, event: &NewAuditEvent) -> AuditEntry {
        AuditEntry {
            id: self.id,
            seq: Some(self.seq),
            occurred_at: event.occurred_at,
            actor: event.actor,
            action: event.action,
            call_sid: event.call_sid.clone(),
            agent_id: event.agent_id,
            data: event.data.clone(),
            prev_digest: Some(self.prev_digest),
            digest: Some(self.digest),
        }
    }
}

/// Seals `pending` (already in commit order) after `head`; returns the seals and the new head.
#[must_use]
pub fn seal(head: &ChainHead, pending: &[(i64, NewAuditEvent)]) -> (Vec<Seal>, ChainHead) {
    let mut seals = Vec::with_capacity(pending.len());
    let mut prev = head.digest.clone();
    let mut seq = head.seq;
    for (id, event) in pending {
        seq += 1;
        let d = digest(&prev, seq, event);
        seals.push(Seal {
            id: *id,
            seq,
            prev_digest: prev,
            digest: d.clone(),
        });
        prev = d;
    }
    (seals, ChainHead { seq, digest: prev })
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Break {
    /// The entry's fields no longer match its digest: it was edited (or moved).
    DigestMismatch,
    /// The entry does not follow the previous one: an entry before it was removed or
    /// inserted.
    BrokenLink {
        /// The previous entry's digest.
        expected_prev: String,
        /// What the entry says.
        found_prev: String,
    },
    /// A position is missing or repeated.
    SequenceGap {
        /// The position that should come next.
        expected_seq: i64,
        /// The position found.
        found_seq: i64,
    },
    /// The chain ends before the recorded head: entries at the end were removed.
    MissingTail {
        /// Last position present.
        last_seq: i64,
        /// Position the head records.
        head_seq: i64,
    },
    /// The last entry does not match the recorded head (head or tail edited).
    HeadMismatch {
        /// Digest the head records.
        head_digest: String,
    },
    /// A sealed entry has no digest.
    Unsealed,
}

/// The first entry at which the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrokenEntry {
    /// The chain position where the break was found.
    pub seq: i64,
    /// Storage id of the entry found there, if any.
    pub id: Option<i64>,
    /// What is wrong.
    pub reason: Break,
}

/// The outcome of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    /// Whether every entry checked out.
    pub ok: bool,
    /// Entries checked.
    pub entries: i64,
    /// Digest of the last good entry.
    pub head: String,
    /// The first broken entry, when `ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<BrokenEntry>,
}

/// Recomputes the chain entry by entry, in `seq` order, without holding it in memory.
#[derive(Debug)]
pub struct Verifier {
    prev: String,
    expected_seq: i64,
    broken: Option<BrokenEntry>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// Starts at the genesis digest.
    #[must_use]
    pub fn new() -> Self {
        Self {
            prev: GENESIS.to_owned(),
            expected_seq: 1,
            broken: None,
        }
    }

    /// Whether a break was found (further entries are then ignored).
    #[must_use]
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Checks the next sealed entry.
    pub fn push(&mut self, entry: &AuditEntry) {
        if self.broken.is_some() {
            return;
        }
        let (Some(seq), Some(prev), Some(stored)) = (entry.seq, &entry.prev_digest, &entry.digest)
        else {
            self.fail(self.expected_seq, Some(entry.id), Break::Unsealed);
            return;
        };
        if seq != self.expected_seq {
            let reason = Break::SequenceGap {
                expected_seq: self.expected_seq,
                found_seq: seq,
            };
            self.fail(self.expected_seq, Some(entry.id), reason);
            return;
        }
        if *prev != self.prev {
            let reason = Break::BrokenLink {
                expected_prev: self.prev.clone(),
                found_prev: prev.clone(),
            };
            self.fail(seq, Some(entry.id), reason);
            return;
        }
        if digest(prev, seq, &entry.event()) != *stored {
            self.fail(seq, Some(entry.id), Break::DigestMismatch);
            return;
        }
        self.prev.clone_from(stored);
        self.expected_seq += 1;
    }

    fn fail(&mut self, seq: i64, id: Option<i64>, reason: Break) {
        self.broken = Some(BrokenEntry { seq, id, reason });
    }

    /// Compares the end of the chain with the recorded head and reports.
    #[must_use]
    pub fn finish(mut self, head: &ChainHead) -> VerifyReport {
        let last_seq = self.expected_seq - 1;
        if self.broken.is_none() {
            if last_seq < head.seq {
                let reason = Break::MissingTail {
                    last_seq,
                    head_seq: head.seq,
                };
                self.fail(last_seq + 1, None, reason);
            } else if last_seq > head.seq || self.prev != head.digest {
                let reason = Break::HeadMismatch {
                    head_digest: head.digest.clone(),
                };
                self.fail(last_seq, None, reason);
            }
        }
        VerifyReport {
            ok: self.broken.is_none(),
            entries: last_seq,
            head: self.prev,
            first_broken: self.broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, AuditAction};
    use chrono::TimeZone;

    fn events(n: i64) -> Vec<(i64, NewAuditEvent)> {
        (1..=n)
            .map(|i| {
                let at = Utc.timestamp_opt(1_700_000_000 + i, 0).single().unwrap();
                (
                    i * 10,
                    NewAuditEvent::new(at, Actor::Telnyx, AuditAction::OfferMade)
                        .call(format!("v3:{i}")),
                )
            })
            .collect()
    }

    fn sealed(n: i64) -> (Vec<AuditEntry>, ChainHead) {
        let pending = events(n);
        let (seals, head) = seal(&ChainHead::genesis(), &pending);
        let entries = pending
            .iter()
            .zip(seals)
            .map(|((_, e), s)| s.into_entry(e))
            .collect();
        (entries, head)
    }

    fn verify(entries: &[AuditEntry], head: &ChainHead) -> VerifyReport {
        let mut v = Verifier::new();
        entries.iter().for_each(|e| v.push(e));
        v.finish(head)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (entries, head) = sealed(5);
        let report = verify(&entries, &head);
        assert!(report.ok);
        assert_eq!(report.entries, 5);
        assert_eq!(report.head, head.digest);
    }

    #[test]
    fn sealing_in_two_batches_equals_sealing_at_once() {
        let pending = events(6);
        let (all, head_all) = seal(&ChainHead::genesis(), &pending);
        let (first, mid) = seal(&ChainHead::genesis(), &pending[..2]);
        let (second, head_split) = seal(&mid, &pending[2..]);
        assert_eq!(head_all, head_split);
        assert_eq!(all, [first, second].concat());
    }

    #[test]
    fn an_edited_entry_is_located() {
        let (mut entries, head) = sealed(5);
        entries[2].data = r#"{"x":1}"#.into();
        let b = verify(&entries, &head).first_broken.unwrap();
        assert_eq!((b.seq, b.reason), (3, Break::DigestMismatch));
    }

    #[test]
    fn a_removed_entry_is_located() {
        let (mut entries, head) = sealed(5);
        entries.remove(1);
        let b = verify(&entries, &head).first_broken.unwrap();
        assert_eq!(b.seq, 2);
        assert!(matches!(
            b.reason,
            Break::SequenceGap {
                expected_seq: 2,
                found_seq: 3
            }
        ));
    }

    #[test]
    fn a_cut_tail_is_noticed_through_the_head() {
        let (mut entries, head) = sealed(5);
        entries.truncate(3);
        let b = verify(&entries, &head).first_broken.unwrap();
        assert_eq!(b.seq, 4);
        assert!(matches!(
            b.reason,
            Break::MissingTail {
                last_seq: 3,
                head_seq: 5
            }
        ));
    }

    #[test]
    fn swapped_entries_are_located() {
        let (mut entries, head) = sealed(5);
        let (a, b) = (entries[1].seq, entries[3].seq);
        entries[1].seq = b;
        entries[3].seq = a;
        entries.sort_by_key(|e| e.seq);
        let broken = verify(&entries, &head).first_broken.unwrap();
        assert_eq!(broken.seq, 2);
    }
}
