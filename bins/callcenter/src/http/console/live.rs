//! Live pages without polling in the browser: one task per instance reads the store's
//! change mark (the newest audit entry) every [`POLL`] while a page is open, and wakes the
//! open event streams when it moved; each stream renders its page's live part and sends it
//! as a Server-Sent Event when it differs from what it sent last. The mark is in the
//! database, so a change made through another instance shows too. Time alone changes some
//! states (a heartbeat's expiry, a wrap-up's end): every [`REFRESH`] the streams render
//! anyway.

use std::future::Future;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use futures::Stream;
use store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the change mark is read while a live page is open.
pub const POLL: Duration = Duration::from_millis(400);
/// How often a live page is rendered even without a change.
pub const REFRESH: Duration = Duration::from_secs(5);
/// A comment line keeps idle connections (and proxies) from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Wakes the live pages of this instance.
#[derive(Debug, Clone)]
pub struct Changes {
    tx: watch::Sender<u64>,
    /// Cancelled when the server begins to shut down: the streams end, so the graceful
    /// shutdown does not wait on open pages (the browsers reconnect to another instance).
    closing: CancellationToken,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    /// No page open yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(0),
            closing: CancellationToken::new(),
        }
    }

    /// Ends every open stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// A receiver that sees every later change.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Something changed (or time passed): wake the pages.
    pub fn bump(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Reads the store's change mark while pages are open, until `stop`.
    pub async fn watch_store(self, store: Store, stop: CancellationToken) {
        let mut last = None;
        let mut refreshed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
            if self.tx.receiver_count() == 0 {
                last = None;
                continue;
            }
            match store.change_mark().await {
                Ok(mark) if last != Some(mark) => {
                    last = Some(mark);
                    refreshed = tokio::time::Instant::now();
                    self.bump();
                }
                Ok(_) if refreshed.elapsed() >= REFRESH => {
                    refreshed = tokio::time::Instant::now();
                    self.bump();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "live pages: the change mark is not readable"),
            }
        }
    }
}

/// One event of a stream: `event: {name}` and the HTML, one `data:` line per line.
fn event(name: &str, html: &str) -> Bytes {
    let mut out = String::with_capacity(html.len() + 32);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in html.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// An event stream that sends `render()` as event `name` at once and after every change
/// (when it differs from the last one sent), a keep-alive comment when idle, and ends when
/// `render` fails (the session ended, the agent was removed): the page then reloads.
pub fn stream<F, Fut>(
    changes: &Changes,
    name: &'static str,
    render: F,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + use<F, Fut>
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = Option<String>> + 'static,
{
    struct State<F> {
        closing: CancellationToken,
        rx: watch::Receiver<u64>,
        render: F,
        last: Option<String>,
        first: bool,
    }
    let state = State {
        closing: changes.closing.clone(),
        rx: changes.subscribe(),
        render,
        last: None,
        first: true,
    };
    futures::stream::unfold(Some(state), move |state| async move {
        let mut state = state?;
        loop {
            if !state.first {
                tokio::select! {
                    () = state.closing.cancelled() => return None,
                    changed = state.rx.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    () = tokio::time::sleep(KEEP_ALIVE) => {
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(state)));
                    }
                }
            }
            state.first = false;
            let Some(html) = (state.render)().await else {
                return Some((Ok(event("ended", "")), None));
            };
            if state.last.as_deref() != Some(html.as_str()) {
                let bytes = event(name, &html);
                state.last = Some(html);
                return Some((Ok(bytes), Some(state)));
            }
        }
    })
}

/// The response of an event stream.
pub fn response(
    body: impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn an_event_carries_each_line_as_data() {
        let e = event("board", "<p>a</p>\n<p>b</p>");
        assert_eq!(
            std::str::from_utf8(&e).unwrap(),
            "event: board\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
        );
    }

    #[tokio::test]
    async fn the_stream_sends_the_page_then_only_what_changed() {
        let changes = Changes::new();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = std::sync::Arc::clone(&n);
        let s = stream(&changes, "board", move || {
            let v = counter.load(std::sync::atomic::Ordering::SeqCst);
            async move { (v < 3).then(|| format!("v{v}")) }
        });
        futures::pin_mut!(s);
        assert_eq!(
            s.next().await.unwrap().unwrap(),
            "event: board\ndata: v0\n\n"
        );
        changes.bump(); // same page: nothing sent; the next change sends v1
        tokio::task::yield_now().await;
        n.store(1, std::sync::atomic::Ordering::SeqCst);
        changes.bump();
        assert_eq!(
            s.next().await.unwrap().unwrap(),
            "event: board\ndata: v1\n\n"
        );
        n.store(3, std::sync::atomic::Ordering::SeqCst);
        changes.bump();
        assert_eq!(s.next().await.unwrap().unwrap(), "event: ended\n\n");
        assert!(s.next().await.is_none());
    }
}
