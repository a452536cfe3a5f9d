//! The calls as this process committed them ([`call_center::CallStore::committed`]), for
//! both backends. A webhook's first try decides from the copy without reading the call back;
//! every change decided from it is still checked where it is written (the call's version and
//! the receipts, under SQLite's write lock or in PostgreSQL's apply statement), so a copy
//! gone stale (a redaction, the retention sweep, another instance that took a webhook of the
//! same call) costs a conflict and a read, never a wrong write. On SQLite one process writes
//! the file, so the copy is nearly always the stored state; behind a load balancer on
//! PostgreSQL it is whenever the call's webhooks reach the instance that wrote it last.
//!
//! Only what a commit says is kept: a change whose base is not the copy held (or a new
//! call) is dropped; a call that ended is dropped (what comes after the hang-up reads it);
//! at most [`CAPACITY`] calls are kept, an arbitrary one dropped to make room. A process
//! applies the changes of one call one at a time (the flow's per-call turn), so it records
//! them in commit order.

use std::collections::HashMap;
use std::sync::Mutex;

use call_center::{CallChange, CallState, CallStatus, Offer};
use chrono::{DateTime, SubsecRound as _, Utc};

/// Calls kept at most (a few kilobytes each).
const CAPACITY: usize = 4096;

/// The committed calls, by call sid.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    calls: Mutex<HashMap<String, CallState>>,
}

impl Committed {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallState>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The call as last committed here, if kept.
    pub(crate) fn get(&self, call_sid: &str) -> Option<CallState> {
        self.calls().get(call_sid).cloned()
    }

    /// Records `change`, just committed: the call becomes its new row, its offers are
    /// upserted as the apply statement upserts them.
    pub(crate) fn record(&self, change: &CallChange) {
        let mut calls = self.calls();
        let sid = &change.call.call_sid;
        let base = if change.expected_version == 0 {
            Some(CallState {
                call: change.call.clone(),
                offers: Vec::new(),
            })
        } else {
            calls
                .remove(sid)
                .filter(|s| s.call.version == change.expected_version)
        };
        let Some(mut state) = base else {
            return;
        };
        if change.call.status == CallStatus::Completed {
            return;
        }
        state.call = as_stored_call(change.call.clone());
        for offer in &change.offers {
            upsert(&mut state.offers, offer);
        }
        // The load's order (a uuid's bytes sort as its lower-case text does).
        state
            .offers
            .sort_by_key(|o| (o.attempt, o.offered_at, o.agent_id));
        if calls.len() >= CAPACITY
            && let Some(any) = calls.keys().next().cloned()
        {
            calls.remove(&any);
        }
        calls.insert(sid.clone(), state);
    }
}

/// As `ON CONFLICT (call_sid, attempt, agent_id) DO UPDATE` (`offer_upsert_suffix`): a new
/// offer is added; an existing one takes the new leg, state, times and talk, and keeps its
/// address, offer time and misses before it.
fn upsert(offers: &mut Vec<Offer>, offer: &Offer) {
    let offer = as_stored_offer(offer.clone());
    match offers
        .iter_mut()
        .find(|o| o.attempt == offer.attempt && o.agent_id == offer.agent_id)
    {
        Some(kept) => {
            *kept = Offer {
                sip_uri: std::mem::take(&mut kept.sip_uri),
                sip_key: std::mem::take(&mut kept.sip_key),
                offered_at: kept.offered_at,
                misses_before: kept.misses_before,
                ..offer
            };
        }
        None => offers.push(offer),
    }
}

/// A time as both databases store it (microseconds).
fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn as_stored_call(mut call: call_center::Call) -> call_center::Call {
    call.started_at = stored(call.started_at);
    call.updated_at = stored(call.updated_at);
    for t in [
        &mut call.answered_at,
        &mut call.ended_at,
        &mut call.voicemail_started_at,
        &mut call.redacted_at,
        &mut call.enqueued_at,
        &mut call.delivery_at,
        &mut call.announced_at,
    ] {
        *t = t.map(stored);
    }
    call
}

fn as_stored_offer(mut offer: Offer) -> Offer {
    offer.offered_at = stored(offer.offered_at);
    for t in [
        &mut offer.answered_at,
        &mut offer.ended_at,
        &mut offer.closed_at,
    ] {
        *t = t.map(stored);
    }
    offer
}
