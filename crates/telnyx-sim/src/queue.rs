//! The queue as the simulator saw it: when each caller waited for an agent, when each
//! agent's softphone was busy (ringing or talking) and when the server should have seen it
//! ready again; and what that says about the server's queue (waits while an agent idled,
//! two legs ringing on one softphone, the longest hold).
//!
//! Times are real seconds since the run started. "Ready" is the simulator's estimate of
//! when the server may offer the agent again: the leg's end as the server learned it, plus
//! the wrap-up after a talk or the no-answer delay after a miss, or the moment a paused
//! agent resumed. When callbacks are reordered the server learns the ends later, which
//! makes the estimate early; the idle-wait figure then errs on the strict side.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// What happened, in order of recording.
#[derive(Debug, Clone)]
enum Event {
    /// A caller waited for an agent (in the greeting or the hold loop) over this span.
    Waited { call: String, from: f64, to: f64 },
    /// A softphone rang (and maybe talked) over this span.
    Busy { agent: String, from: f64, to: f64 },
    /// The server may offer this agent again from `at` (estimated at `emitted`).
    Ready {
        agent: String,
        at: f64,
        emitted: f64,
    },
}

/// Shared by every call and the softphones of a run.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            events: Mutex::default(),
        }
    }
}

/// What the timeline shows.
#[derive(Debug, Default, Clone)]
pub struct QueueReport {
    /// The longest time (real seconds) a caller waited while an agent the server could
    /// have offered it to sat idle.
    pub max_idle_wait: f64,
    /// The caller and agent of that wait.
    pub max_idle_wait_at: Option<(String, String)>,
    /// That wait as seen: the agent ready from (estimated when), the caller waiting from
    /// and to, the agent's next ring (run seconds).
    pub max_idle_wait_spans: String,
    /// A softphone rang twice at once (agent, the two spans).
    pub overlapping_legs: Vec<String>,
    /// The longest single wait of a caller (real seconds).
    pub longest_wait: f64,
}

impl Timeline {
    /// Seconds since the run started.
    #[must_use]
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(e);
    }

    /// A caller waited from `from` until now.
    pub fn waited(&self, call: &str, from: f64) {
        let to = self.now();
        self.push(Event::Waited {
            call: call.to_owned(),
            from,
            to,
        });
    }

    /// A softphone was busy from `from` until now.
    pub fn busy(&self, agent: &str, from: f64) {
        self.busy_until(agent, from, self.now());
    }

    /// A softphone was busy from `from` until `to`.
    pub fn busy_until(&self, agent: &str, from: f64, to: f64) {
        self.push(Event::Busy {
            agent: agent.to_owned(),
            from,
            to,
        });
    }

    /// The server may offer `agent` again `after` seconds from now.
    pub fn ready_after(&self, agent: &str, after: f64) {
        let emitted = self.now();
        self.push(Event::Ready {
            agent: agent.to_owned(),
            at: emitted + after.max(0.0),
            emitted,
        });
    }

    /// Reads the timeline at the end of a run.
    #[must_use]
    pub fn report(&self) -> QueueReport {
        let end = self.now();
        let events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut busy: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
        let mut ready: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
        let mut waits: Vec<(&str, f64, f64)> = Vec::new();
        for e in &events {
            match e {
                Event::Waited { call, from, to } => waits.push((call, *from, *to)),
                Event::Busy { agent, from, to } => {
                    busy.entry(agent).or_default().push((*from, *to))
                }
                Event::Ready { agent, at, emitted } => {
                    ready.entry(agent).or_default().push((*at, *emitted))
                }
            }
        }
        let mut report = QueueReport {
            longest_wait: waits.iter().map(|(_, f, t)| t - f).fold(0.0, f64::max),
            ..QueueReport::default()
        };
        for spans in busy.values_mut() {
            spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        for (agent, spans) in &busy {
            for w in spans.windows(2) {
                if w[1].0 < w[0].1 {
                    report.overlapping_legs.push(format!(
                        "{agent}: rang {:.3}–{:.3} s and {:.3}–{:.3} s",
                        w[0].0, w[0].1, w[1].0, w[1].1
                    ));
                }
            }
        }
        for (agent, readies) in &ready {
            let spans = busy.get(agent).map_or(&[][..], Vec::as_slice);
            for &(at, emitted) in readies {
                // Ready while its softphone was busy: the estimate is moot. Rung again
                // between the estimate and its instant: the server knew better (it learned
                // of the miss only later, or never held the agent for it); offering before
                // a known delay or wrap-up ended is what the offers check catches.
                if spans
                    .iter()
                    .any(|&(f, t)| (f <= at && at < t) || (emitted <= f && f < at))
                {
                    continue;
                }
                let idle_until = spans
                    .iter()
                    .map(|&(f, _)| f)
                    .find(|&f| f >= at)
                    .unwrap_or(end);
                for &(call, from, to) in &waits {
                    let overlap = to.min(idle_until) - from.max(at);
                    if overlap > report.max_idle_wait {
                        report.max_idle_wait = overlap;
                        report.max_idle_wait_at = Some((call.to_owned(), (*agent).to_owned()));
                        report.max_idle_wait_spans = format!(
                            "agent ready from {at:.3} s (estimated at {emitted:.3} s), caller waiting {from:.3}–{to:.3} s, agent rung next at {idle_until:.3} s"
                        );
                    }
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(events: Vec<Event>) -> Timeline {
        let t = Timeline::default();
        *t.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = events;
        t
    }

    #[test]
    fn a_wait_while_an_agent_idles_is_measured_until_the_agent_rings() {
        let t = timeline(vec![
            Event::Ready {
                agent: "a".into(),
                at: 1.0,
                emitted: 0.0,
            },
            Event::Waited {
                call: "c".into(),
                from: 0.5,
                to: 1.75,
            },
            Event::Busy {
                agent: "a".into(),
                from: 1.75,
                to: 3.0,
            },
        ]);
        let r = t.report();
        assert!((r.max_idle_wait - 0.75).abs() < 1e-9, "{r:?}");
        assert!(r.overlapping_legs.is_empty());
        assert!((r.longest_wait - 1.25).abs() < 1e-9);
    }

    #[test]
    fn a_ready_estimate_inside_a_ring_and_overlapping_rings_are_told_apart() {
        let t = timeline(vec![
            Event::Busy {
                agent: "a".into(),
                from: 1.0,
                to: 2.0,
            },
            Event::Busy {
                agent: "a".into(),
                from: 1.5,
                to: 2.5,
            },
            Event::Ready {
                agent: "a".into(),
                at: 1.2,
                emitted: 1.1,
            },
            Event::Waited {
                call: "c".into(),
                from: 0.0,
                to: 1.4,
            },
        ]);
        let r = t.report();
        assert_eq!(r.max_idle_wait, 0.0, "{r:?}");
        assert_eq!(r.overlapping_legs.len(), 1);
    }
}
