//! The callback spool: Telnyx callbacks acknowledged before they could be stored (the
//! database failing, or slower than the webhook deadline) wait here, on disk, until the
//! store takes them. Nothing acknowledged lives only in memory.
//!
//! - One folder per instance, held with an exclusive lock on its `LOCK` file: a second
//!   process on the same folder refuses to start.
//! - Append-only segments `<n>.jsonl`, one JSON line per callback, written and fsynced (the
//!   file, and the folder when the segment is new) before the acknowledgement goes out. A
//!   line cut short by a crash was never acknowledged and is skipped.
//! - The replayer (at start, then every [`REPLAY_EVERY`]) closes the open segment and feeds
//!   the closed ones, oldest first, to the flow, each callback decided as of the time it was
//!   received. A segment is deleted once every line is applied or known to be a repeat.
//!   When the store still fails, the pass stops and the segment stays: lines already
//!   applied come again next pass, and their receipts make them repeats.
//! - Bounded by `max_bytes`: past it a callback is refused (the server answers 503, so
//!   Telnyx retries or uses the failover URL), loudly, and counted.
//! - A line the flow cannot read, or still failing after [`GIVE_UP_AFTER`], goes to
//!   `dead-letter.jsonl` beside the segments, logged as an error and counted: kept for a
//!   person, never silently dropped.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use call_center::{
    CallFlow, Endpoint, Event, EventError, FlowError, Params, Signed, SignedRequest,
    from_call_control, from_params,
};
use chrono::{DateTime, Utc};
use prometheus::{IntCounter, IntGauge};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How often the replayer looks at the spool.
pub const REPLAY_EVERY: Duration = Duration::from_secs(2);
/// A callback still failing this long after it was received goes to the dead letters
/// (receipts, which make a late repeat harmless, are kept two days).
pub const GIVE_UP_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

const LOCK: &str = "LOCK";
const DEAD_LETTER: &str = "dead-letter.jsonl";

/// What a request carried: the form parameters (TeXML) or a Call Control JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// Form parameters, in order.
    Form(Vec<(String, String)>),
    /// A Call Control JSON event.
    CallControl(String),
}

impl Body {
    /// The event this body is, at `endpoint` with the URL's signed parameters.
    ///
    /// # Errors
    /// As [`from_params`] and [`from_call_control`].
    pub fn event(
        &self,
        endpoint: Endpoint,
        signed: Option<&Signed>,
    ) -> Result<Option<Event>, EventError> {
        match self {
            Self::Form(pairs) => from_params(endpoint, &Params::new(pairs.clone()), signed),
            Self::CallControl(json) => from_call_control(json.as_bytes()),
        }
    }
}

/// One callback in the spool: everything needed to handle it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spooled {
    /// When the server received it: "now" for its decision.
    pub received_at: DateTime<Utc>,
    /// Where it was sent.
    pub endpoint: Endpoint,
    /// What it carried.
    pub body: Body,
    /// The URL's parameters under the server's MAC.
    pub signed: Option<Signed>,
    /// Its verified signature's receipt.
    pub receipt: Option<SignedRequest>,
}

/// Why a callback could not be kept.
#[derive(Debug, Error)]
pub enum SpoolError {
    /// Over `CALL_CENTER_SPOOL_MAX_BYTES`.
    #[error("the spool is full ({bytes} of {max} bytes)")]
    Full {
        /// Bytes in the spool.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The disk refused.
    #[error("writing the spool")]
    Io(#[from] std::io::Error),
    /// Not serialisable (a bug).
    #[error("encoding a spool line")]
    Json(#[from] serde_json::Error),
}

/// The spool's metrics.
#[derive(Debug, Clone)]
pub struct SpoolMetrics {
    /// Callbacks waiting.
    pub pending: IntGauge,
    /// Bytes on disk.
    pub bytes: IntGauge,
    /// Callbacks refused because the spool was full or the disk failed.
    pub refused: IntCounter,
    /// Callbacks replayed into the store.
    pub replayed: IntCounter,
    /// Callbacks moved to the dead letters.
    pub dead: IntCounter,
}

struct Writer {
    /// The segment being appended to, if any.
    open: Option<(PathBuf, File)>,
    /// Bytes of all segments.
    bytes: u64,
    /// The next segment's number.
    next: u64,
}

/// The spool of one instance.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    writer: Mutex<Writer>,
    metrics: SpoolMetrics,
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish()
    }
}

/// What one replay pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Callbacks handled (applied or repeats).
    pub handled: u64,
    /// Callbacks moved to the dead letters.
    pub dead: u64,
    /// Whether the pass stopped on a failing store (callbacks still wait).
    pub stopped: bool,
}

fn segment_number(path: &Path) -> Option<u64> {
    path.extension().filter(|e| *e == "jsonl")?;
    path.file_stem()?.to_str()?.parse().ok()
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(n) = segment_number(&path) {
            found.push((n, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The complete lines of a segment (a last line without its newline was cut by a crash
/// before it was acknowledged).
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.split('\n').filter(|l| !l.trim().is_empty())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (creating) the spool in `dir` and takes its lock.
    ///
    /// # Errors
    /// When the folder cannot be created or read, or another process holds it.
    pub fn open(dir: &Path, max_bytes: u64, metrics: SpoolMetrics) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the spool folder {}", dir.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .with_context(|| format!("opening {}", dir.join(LOCK).display()))?;
        if lock.try_lock().is_err() {
            anyhow::bail!(
                "the spool folder {} is held by another process (CALL_CENTER_SPOOL_DIR must be \
                 one folder per instance)",
                dir.display()
            );
        }
        let mut bytes = 0;
        let mut lines = 0;
        let mut next = 0;
        for (n, path) in segments(dir).context("reading the spool folder")? {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            bytes += text.len() as u64;
            lines += complete_lines(&text).count() as i64;
            next = next.max(n + 1);
        }
        metrics.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        metrics.pending.set(lines);
        if lines > 0 {
            tracing::warn!(
                callbacks = lines,
                dir = %dir.display(),
                "the spool holds callbacks from before this start; replaying them"
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            writer: Mutex::new(Writer {
                open: None,
                bytes,
                next,
            }),
            metrics,
            _lock: lock,
        })
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `entry` on disk (fsynced) before returning.
    ///
    /// # Errors
    /// [`SpoolError::Full`] over the limit; [`SpoolError::Io`] when the disk refuses. Both
    /// are counted and logged as errors.
    pub async fn keep(self: &Arc<Self>, entry: &Spooled) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let spool = Arc::clone(self);
        let kept = tokio::task::spawn_blocking(move || spool.append(&line))
            .await
            .unwrap_or_else(|e| Err(SpoolError::Io(std::io::Error::other(e))));
        if let Err(e) = &kept {
            self.metrics.refused.inc();
            tracing::error!(error = %crate::telemetry::chain(e), dir = %self.dir.display(), "CALLBACK REFUSED: it could not be stored nor kept in the spool");
        }
        kept
    }

    fn append(&self, line: &[u8]) -> Result<(), SpoolError> {
        let mut w = self.writer();
        let len = line.len() as u64;
        if w.bytes + len > self.max_bytes {
            return Err(SpoolError::Full {
                bytes: w.bytes,
                max: self.max_bytes,
            });
        }
        if w.open.is_none() {
            let path = self.dir.join(format!("{}.jsonl", w.next));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            sync_dir(&self.dir)?;
            w.next += 1;
            w.open = Some((path, file));
        }
        if let Some((_, file)) = w.open.as_mut() {
            file.write_all(line)?;
            file.sync_data()?;
        }
        w.bytes += len;
        self.metrics
            .bytes
            .add(i64::try_from(len).unwrap_or(i64::MAX));
        self.metrics.pending.inc();
        Ok(())
    }

    /// Whether anything waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writer().bytes == 0
    }

    /// Closes the open segment and lists every segment, oldest first.
    fn close_and_list(&self) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let mut w = self.writer();
        w.open = None;
        segments(&self.dir)
    }

    /// One pass: hands every waiting callback to `flow`, each with at most `deadline`.
    pub async fn replay(&self, flow: &CallFlow, deadline: Duration) -> Replayed {
        let mut pass = Replayed::default();
        let listed = match self.close_and_list() {
            Ok(listed) => listed,
            Err(e) => {
                tracing::error!(error = %e, dir = %self.dir.display(), "cannot read the spool folder");
                pass.stopped = true;
                return pass;
            }
        };
        for (_, path) in listed {
            if !self.replay_segment(&path, flow, deadline, &mut pass).await {
                pass.stopped = true;
                break;
            }
        }
        if pass.handled > 0 || pass.dead > 0 {
            tracing::info!(
                handled = pass.handled,
                dead = pass.dead,
                waiting = self.metrics.pending.get(),
                "spooled callbacks replayed"
            );
        }
        pass
    }

    /// Replays one segment; `false` when the store still fails (the segment stays).
    async fn replay_segment(
        &self,
        path: &Path,
        flow: &CallFlow,
        deadline: Duration,
        pass: &mut Replayed,
    ) -> bool {
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot read a spool segment");
                return false;
            }
        };
        let mut done = 0;
        for line in complete_lines(&text) {
            match self.replay_line(line, flow, deadline).await {
                Line::Handled => pass.handled += 1,
                Line::Dead(why) => {
                    self.dead_letter(line, &why);
                    pass.dead += 1;
                }
                Line::StoreFailing => return false,
            }
            done += 1;
        }
        if let Err(e) = std::fs::remove_file(path) {
            tracing::error!(error = %e, path = %path.display(), "cannot remove a replayed spool segment");
            return false;
        }
        let mut w = self.writer();
        w.bytes = w.bytes.saturating_sub(text.len() as u64);
        self.metrics
            .bytes
            .set(i64::try_from(w.bytes).unwrap_or(i64::MAX));
        self.metrics.pending.sub(done);
        true
    }

    async fn replay_line(&self, line: &str, flow: &CallFlow, deadline: Duration) -> Line {
        let entry: Spooled = match serde_json::from_str(line) {
            Ok(entry) => entry,
            Err(e) => return Line::Dead(format!("unreadable: {e}")),
        };
        let event = match entry.body.event(entry.endpoint, entry.signed.as_ref()) {
            Ok(Some(event)) => event,
            Ok(None) => return Line::Handled,
            Err(e) => return Line::Dead(format!("not a callback the flow reads: {e}")),
        };
        let work = flow.handle_at(&event, entry.receipt.clone(), entry.received_at);
        match tokio::time::timeout(deadline, work).await {
            Ok(Ok(_)) => {
                self.metrics.replayed.inc();
                Line::Handled
            }
            Ok(Err(FlowError::Replay)) => {
                Line::Dead("its signature was used for another request".into())
            }
            failed => {
                let age = Utc::now() - entry.received_at;
                if age > GIVE_UP_AFTER {
                    return Line::Dead(format!("still failing after {} h", age.num_hours()));
                }
                if let Ok(Err(e)) = failed {
                    tracing::warn!(error = %crate::telemetry::chain(&e), call_sid = event.call_sid().unwrap_or("-"), "spooled callback still waits for the store");
                }
                Line::StoreFailing
            }
        }
    }

    fn dead_letter(&self, line: &str, why: &str) {
        self.metrics.dead.inc();
        tracing::error!(reason = why, dir = %self.dir.display(), "SPOOLED CALLBACK SET ASIDE in {DEAD_LETTER}: it needs a person");
        let kept = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(DEAD_LETTER))
            .and_then(|mut f| {
                f.write_all(line.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_data()
            });
        if let Err(e) = kept {
            tracing::error!(error = %e, line, "cannot write the dead letter; the callback is only in this log line");
        }
    }
}

enum Line {
    Handled,
    Dead(String),
    StoreFailing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> SpoolMetrics {
        SpoolMetrics {
            pending: IntGauge::new("p", "p").unwrap(),
            bytes: IntGauge::new("b", "b").unwrap(),
            refused: IntCounter::new("r", "r").unwrap(),
            replayed: IntCounter::new("rp", "rp").unwrap(),
            dead: IntCounter::new("d", "d").unwrap(),
        }
    }

    fn entry(n: usize) -> Spooled {
        Spooled {
            received_at: Utc::now(),
            endpoint: Endpoint::Events,
            body: Body::Form(vec![("CallSid".into(), format!("v3:{n}"))]),
            signed: None,
            receipt: None,
        }
    }

    #[tokio::test]
    async fn kept_lines_survive_a_reopen_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), 1 << 20, metrics()).unwrap());
        for n in 0..3 {
            spool.keep(&entry(n)).await.unwrap();
        }
        drop(spool);
        let segment = dir.path().join("0.jsonl");
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(b"{\"received_at\":").unwrap();
        let m = metrics();
        let reopened = Spool::open(dir.path(), 1 << 20, m.clone()).unwrap();
        assert_eq!(
            m.pending.get(),
            3,
            "three acknowledged lines, the torn one skipped"
        );
        assert!(!reopened.is_empty());
    }

    #[tokio::test]
    async fn one_folder_one_instance() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Spool::open(dir.path(), 1 << 20, metrics()).unwrap();
        let second = Spool::open(dir.path(), 1 << 20, metrics());
        assert!(second.is_err());
    }

    #[tokio::test]
    async fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics();
        let spool = Arc::new(Spool::open(dir.path(), 200, m.clone()).unwrap());
        spool.keep(&entry(1)).await.unwrap();
        assert!(matches!(
            spool.keep(&entry(2)).await,
            Err(SpoolError::Full { .. })
        ));
        assert_eq!(m.refused.get(), 1);
    }
}
