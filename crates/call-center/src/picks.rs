//! Agents picked for an inline offer by a request of this process that has not stored it
//! yet. Concurrent requests that read the same free agents used to pick the same ones and
//! all but one lost the race at the store (measured: 1.3 lost races per inbound call at
//! 20 concurrent callers, each a wasted write turn and a second read); a request now picks
//! among the free agents no other request of this process is holding, and when every free
//! agent is held it waits for a release and reads again.
//!
//! Correctness never rests on it: the store checks each agent's reservability when the
//! change is applied, so requests of other instances (or the matcher) still meet there.
//! A pick is released when its guard is dropped: after the change was applied, lost, or
//! its request gave up.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use agents::{AgentId, Candidate};
use rand::seq::SliceRandom as _;

/// The agents held by this process's requests, and the signal of their release.
#[derive(Default)]
pub(crate) struct PickedAgents {
    held: Mutex<HashSet<AgentId>>,
    released: tokio::sync::Notify,
}

/// Agents held by one request until dropped.
pub(crate) struct Picks<'a> {
    register: Option<&'a PickedAgents>,
    agents: Vec<AgentId>,
}

impl Picks<'_> {
    /// A guard holding nothing.
    pub(crate) fn none() -> Self {
        Self {
            register: None,
            agents: Vec::new(),
        }
    }
}

/// What [`PickedAgents::pick`] found.
pub(crate) enum Pick<'a> {
    /// Up to `n` of the free agents, in their order, now held by this request (none when
    /// there were none free).
    Taken(Vec<Candidate>, Picks<'a>),
    /// Every free agent is held by another request of this process.
    AllHeld,
}

impl PickedAgents {
    fn held(&self) -> MutexGuard<'_, HashSet<AgentId>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes up to `n` of `free` (the longest idle first) at random among those nobody
    /// holds, keeping their order, and holds them.
    pub(crate) fn pick(&self, free: Vec<Candidate>, n: usize) -> Pick<'_> {
        let mut held = self.held();
        let some_free = !free.is_empty();
        let mut open: Vec<(usize, Candidate)> = free
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !held.contains(&c.id))
            .collect();
        if open.is_empty() && some_free {
            return Pick::AllHeld;
        }
        open.shuffle(&mut rand::rng());
        open.truncate(n);
        open.sort_by_key(|(i, _)| *i);
        let agents: Vec<AgentId> = open.iter().map(|(_, c)| c.id).collect();
        held.extend(agents.iter().copied());
        Pick::Taken(
            open.into_iter().map(|(_, c)| c).collect(),
            Picks {
                register: Some(self),
                agents,
            },
        )
    }

    /// Resolves at the next release (register it with `enable` before reading what is
    /// free, so a release in between is not missed).
    pub(crate) fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }
}

impl Drop for Picks<'_> {
    fn drop(&mut self) {
        let Some(register) = self.register else {
            return;
        };
        if self.agents.is_empty() {
            return;
        }
        {
            let mut held = register.held();
            for agent in &self.agents {
                held.remove(agent);
            }
        }
        register.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u128) -> Candidate {
        Candidate {
            id: AgentId(uuid::Uuid::from_u128(n)),
            sip_uri: agents::SipUri::parse(&format!("sip:agent{n}@example.sip.telnyx.com"))
                .expect("sip uri"),
            missed_in_a_row: 0,
        }
    }

    fn ids(c: &[Candidate]) -> Vec<AgentId> {
        c.iter().map(|c| c.id).collect()
    }

    /// The agents a pick took, or a failed test saying why some should have been.
    fn taken<'a>(pick: Pick<'a>, why: &str) -> (Vec<Candidate>, Picks<'a>) {
        match pick {
            Pick::Taken(agents, picks) => (agents, picks),
            Pick::AllHeld => panic!("{why}"),
        }
    }

    #[test]
    fn concurrent_picks_never_share_an_agent_and_a_drop_releases() {
        let register = PickedAgents::default();
        let free: Vec<Candidate> = (1..=3).map(candidate).collect();
        let (first, first_picks) = taken(register.pick(free.clone(), 2), "three free agents");
        assert_eq!(first.len(), 2);
        let (second, second_picks) = taken(register.pick(free.clone(), 2), "one agent still open");
        assert_eq!(second.len(), 1);
        assert!(ids(&first).iter().all(|a| !ids(&second).contains(a)));
        assert!(matches!(register.pick(free.clone(), 2), Pick::AllHeld));
        drop(first_picks);
        let (third, _third_picks) = taken(
            register.pick(free, 2),
            "the first request's agents are released",
        );
        assert_eq!(ids(&third), ids(&first));
        drop(second_picks);
    }

    #[test]
    fn picks_keep_the_longest_idle_order_and_nothing_free_is_no_agent() {
        let register = PickedAgents::default();
        let free: Vec<Candidate> = (1..=8).map(candidate).collect();
        let (picked, _picks) = taken(register.pick(free.clone(), 3), "eight free agents");
        let positions: Vec<usize> = picked
            .iter()
            .map(|t| {
                free.iter()
                    .position(|f| f.id == t.id)
                    .expect("one of the free")
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        let (none, _) = taken(
            register.pick(Vec::new(), 2),
            "nothing free is no pick, not a wait",
        );
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn a_release_wakes_a_request_waiting_for_it() {
        let register = std::sync::Arc::new(PickedAgents::default());
        let (_, picks) = taken(register.pick(vec![candidate(1)], 2), "one free agent");
        let released = register.released();
        tokio::pin!(released);
        released.as_mut().enable();
        assert!(matches!(
            register.pick(vec![candidate(1)], 2),
            Pick::AllHeld
        ));
        drop(picks);
        tokio::time::timeout(std::time::Duration::from_secs(5), released)
            .await
            .expect("woken by the release");
    }
}
