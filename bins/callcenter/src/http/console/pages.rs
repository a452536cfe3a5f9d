//! The HTML of the console and the wallboard (maud: every value is escaped unless written
//! with `PreEscaped`, which this module never does with data). Times travel as RFC 3339 in
//! `data-since` / `data-until` attributes; the page's script turns them into running
//! timers, so a page needs no new data for a clock to move.

use agents::{Activity, AgentView, EffectiveStatus, PauseReason};
use audit::VerifyReport;
use call_center::reports::{AgentSummary, Summary};
use call_center::{CallView, QueuedCaller, Voicemail};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

/// Path of the script and the stylesheet (compiled into the binary).
pub const SCRIPT_PATH: &str = "/console/assets/console.js";
/// Path of the stylesheet.
pub const STYLE_PATH: &str = "/console/assets/console.css";

/// A whole page.
fn layout(title: &str, csrf: &str, live: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(csrf);
                @if let Some(events) = live {
                    meta name="live-events" content=(events);
                }
                title { (title) " · Call center" }
                link rel="stylesheet" href=(STYLE_PATH);
                script src=(SCRIPT_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (body)
            }
        }
    }
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

fn notice(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.notice role="alert" id="notice" { (m) }
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A running timer since `t` (the script keeps it moving).
fn since(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let secs = (now - t).num_seconds().max(0);
    html! { span.timer data-since=(time(t)) { (clock(secs)) } }
}

/// A countdown to `t`.
fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let secs = (t - now).num_seconds().max(0);
    html! { span.timer data-until=(time(t)) { (clock(secs)) } }
}

/// `m:ss` or `h:mm:ss`.
#[must_use]
pub fn clock(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn seconds(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |s| format!("{s:.0} s"))
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |p| format!("{p:.1} %"))
}

/// The sign-in page of the console (agent id and heartbeat token) or the wallboard (the
/// admin token).
#[must_use]
pub fn sign_in(supervisor: bool, csrf: &str, message: Option<&str>) -> Markup {
    let (title, action) = if supervisor {
        ("Wallboard sign-in", "/wallboard/sign-in")
    } else {
        ("Agent sign-in", "/console/sign-in")
    };
    layout(
        title,
        csrf,
        None,
        html! {
            main #main .narrow {
                h1 { (title) }
                (notice(message))
                form method="post" action=(action) {
                    (csrf_field(csrf))
                    @if supervisor {
                        label for="token" { "Admin token" }
                        input #token type="password" name="token" required autocomplete="current-password";
                    } @else {
                        label for="agent_id" { "Agent id" }
                        input #agent_id type="text" name="agent_id" required autocomplete="username"
                            spellcheck="false" autocapitalize="off";
                        label for="token" { "Heartbeat token" }
                        input #token type="password" name="token" required autocomplete="current-password";
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The page a sign-in link opens: one button that uses the link.
#[must_use]
pub fn link(token: &str, csrf: &str) -> Markup {
    layout(
        "Agent sign-in",
        csrf,
        None,
        html! {
            main #main .narrow {
                h1 { "Agent sign-in" }
                p { "This link signs you in to the agent console once." }
                form method="post" action="/console/link" {
                    (csrf_field(csrf))
                    input type="hidden" name="token" value=(token);
                    button #use-link type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The wallboard's answer to "Sign-in link": the link, once.
#[must_use]
pub fn link_made(agent: &str, url: &str, expires_at: DateTime<Utc>) -> Markup {
    layout(
        "Sign-in link",
        "",
        None,
        html! {
            main #main .narrow {
                h1 { "Sign-in link for " (agent) }
                p { "Give this link to " (agent) ". It works once, until "
                    time datetime=(time(expires_at)) { (expires_at.format("%H:%M UTC")) } ". It is shown only now." }
                p { code #sign-in-link .wrap { (url) } }
                p { a href="/wallboard" { "Back to the wallboard" } }
            }
        },
    )
}

/// A page that only says what went wrong (a refused form).
#[must_use]
pub fn problem(title: &str, message: &str, back: &str) -> Markup {
    layout(
        title,
        "",
        None,
        html! {
            main #main .narrow {
                h1 { (title) }
                p role="alert" { (message) }
                p { a href=(back) { "Back" } }
            }
        },
    )
}

fn status_label(a: &AgentView) -> String {
    match (&a.status, &a.paused_reason) {
        (EffectiveStatus::Paused, Some(r)) => format!("paused ({r})"),
        (s, _) => s.as_str().replace('_', " "),
    }
}

fn activity_label(a: Activity) -> &'static str {
    match a {
        Activity::Idle => "idle",
        Activity::Reserved => "reserved",
        Activity::Ringing => "ringing",
        Activity::OnCall => "on call",
        Activity::WrapUp => "wrap-up",
    }
}

fn sign_out(action: &str, csrf: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(csrf))
            button type="submit" .secondary { "Sign out" }
        }
    }
}

/// The agent console: the status controls (static) and the live part.
#[must_use]
pub fn console(
    me: &AgentView,
    reasons: &[PauseReason],
    csrf: &str,
    heartbeat_seconds: u64,
    live: Markup,
    message: Option<&str>,
) -> Markup {
    layout(
        "Console",
        csrf,
        Some("/console/events"),
        html! {
            header {
                h1 { "Console · " span #agent-name { (me.name) } }
                (sign_out("/console/sign-out", csrf))
            }
            main #main data-heartbeat=(heartbeat_seconds) {
                (notice(message))
                section aria-labelledby="status-h" {
                    h2 #status-h { "My status" }
                    form.controls method="post" action="/console/status" {
                        (csrf_field(csrf))
                        button type="submit" name="status" value="available" { "Available" }
                        label for="reason" { "Pause reason" }
                        select #reason name="reason" {
                            @for r in reasons {
                                option value=(r) { (r) }
                            }
                        }
                        button type="submit" name="status" value="paused" { "Pause" }
                        button type="submit" name="status" value="offline" .secondary { "Offline" }
                    }
                }
                div #live aria-live="polite" { (live) }
            }
        },
    )
}

/// What a console shows of the agent's call.
#[derive(Debug, Clone, Default)]
pub struct CurrentCall {
    /// The caller's number.
    pub from: Option<String>,
    /// When the agent answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the agent's offer for it was made.
    pub offered_at: Option<DateTime<Utc>>,
}

/// The console's live part.
#[must_use]
pub fn console_live(
    me: &AgentView,
    call: &CurrentCall,
    today: Option<&AgentSummary>,
    recent: &[CallView],
    voicemails: &[Voicemail],
    csrf: &str,
    now: DateTime<Utc>,
) -> Markup {
    html! {
        section aria-labelledby="now-h" {
            h2 #now-h { "Now" }
            p #status { "Status: " strong { (status_label(me)) } }
            p #activity data-activity=(activity_label(me.activity)) {
                @match me.activity {
                    Activity::Idle => { "Waiting for a call." }
                    Activity::Reserved => {
                        "Reserved for " strong.caller { (call.from.as_deref().unwrap_or("a caller")) }
                    }
                    Activity::Ringing => {
                        "Ringing: " strong.caller { (call.from.as_deref().unwrap_or("a caller")) }
                    }
                    Activity::OnCall => {
                        "On call with " strong.caller { (call.from.as_deref().unwrap_or("a caller")) }
                        @if let Some(t) = call.answered_at {
                            " · " span #call-timer { (since(t, now)) }
                        }
                    }
                    Activity::WrapUp => {
                        "Wrap-up: "
                        @if let Some(t) = me.wrap_up_until {
                            span #wrap-up-countdown { (until(t, now)) } " left "
                        }
                    }
                }
            }
            @if me.activity == Activity::WrapUp {
                form.inline method="post" action="/console/ready" {
                    (csrf_field(csrf))
                    button #ready-now type="submit" { "Ready now" }
                }
            }
        }
        section aria-labelledby="today-h" {
            h2 #today-h { "Today" }
            dl.figures {
                div { dt { "Answered" } dd #today-answered { (today.map_or(0, |t| t.answered)) } }
                div { dt { "Missed" } dd { (today.map_or(0, |t| t.missed)) } }
                div { dt { "Talk time" } dd { (clock(today.map_or(0, |t| t.talk_seconds))) } }
                div { dt { "Answer rate" } dd { (percent(today.and_then(|t| t.answer_rate_pct))) } }
            }
        }
        section aria-labelledby="recent-h" {
            h2 #recent-h { "My recent calls" }
            (calls_table(recent, "No calls yet."))
        }
        section aria-labelledby="vm-h" {
            h2 #vm-h { "My voicemails" }
            @if voicemails.is_empty() {
                p { "No voicemails assigned to you." }
            } @else {
                ul #my-voicemails .items {
                    @for v in voicemails {
                        li data-call=(v.call_sid) {
                            (voicemail_body(v))
                            form.inline method="post" action=(format!("/console/voicemails/{}/done", v.call_sid)) {
                                (csrf_field(csrf))
                                button type="submit" { "Done" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn voicemail_body(v: &Voicemail) -> Markup {
    html! {
        p {
            strong.caller { (v.from) } " · "
            time datetime=(time(v.left_at)) { (v.left_at.format("%Y-%m-%d %H:%M UTC")) }
            @if let Some(d) = v.duration_seconds { " · " (clock(d)) }
        }
        p.transcription { (v.transcription.as_deref().unwrap_or("(no transcription yet)")) }
        @if let Some(url) = &v.recording_url {
            p { a href=(url) rel="noopener noreferrer" target="_blank" { "Recording" } }
        }
    }
}

fn calls_table(calls: &[CallView], empty: &str) -> Markup {
    html! {
        @if calls.is_empty() {
            p { (empty) }
        } @else {
            div.scroll {
                table {
                    thead { tr { th scope="col" { "Caller" } th scope="col" { "Started" } th scope="col" { "Outcome" } th scope="col" { "Talk" } th scope="col" { "Recording" } } }
                    tbody {
                        @for c in calls {
                            tr {
                                td { (c.from) }
                                td { time datetime=(time(c.started_at)) { (c.started_at.format("%H:%M:%S")) } }
                                td { (c.outcome.map_or("in progress", |o| o.as_str())) }
                                td { (c.talk_seconds.map_or_else(String::new, clock)) }
                                td {
                                    @if let Some(url) = &c.recording_url {
                                        a href=(url) rel="noopener noreferrer" target="_blank" { "Listen" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The wallboard page around its live part.
#[must_use]
pub fn wallboard(csrf: &str, live: Markup, message: Option<&str>) -> Markup {
    layout(
        "Wallboard",
        csrf,
        Some("/wallboard/events"),
        html! {
            header {
                h1 { "Wallboard" }
                (sign_out("/wallboard/sign-out", csrf))
            }
            main #main {
                (notice(message))
                div #live aria-live="polite" { (live) }
            }
        },
    )
}

/// Everything the wallboard's live part shows.
#[derive(Debug)]
pub struct Board<'a> {
    /// Callers in the queue, in order.
    pub queue: &'a [QueuedCaller],
    /// Every agent, with the caller each one is busy with.
    pub agents: &'a [(AgentView, CurrentCall)],
    /// Today's summary (`GET /reports/summary` from midnight UTC).
    pub today: &'a Summary,
    /// Newest calls.
    pub recent: &'a [CallView],
    /// The last verification of the audit chain, and when it ran.
    pub audit: Option<&'a (DateTime<Utc>, VerifyReport)>,
    /// Voicemails not done yet.
    pub voicemails: &'a [Voicemail],
    /// Now.
    pub now: DateTime<Utc>,
}

/// The wallboard's live part.
#[must_use]
pub fn wallboard_live(b: &Board<'_>, csrf: &str) -> Markup {
    let longest = b.queue.iter().map(|c| c.enqueued_at).min();
    html! {
        section aria-labelledby="queue-h" {
            h2 #queue-h { "Waiting callers " span.count #waiting-count { (b.queue.len()) } }
            p { "Longest wait: " @if let Some(t) = longest { strong #longest-wait { (since(t, b.now)) } } @else { "–" } }
            @if b.queue.is_empty() {
                p #queue-empty { "Nobody is waiting." }
            } @else {
                div.scroll {
                    table #queue {
                        thead { tr { th scope="col" { "#" } th scope="col" { "Caller" } th scope="col" { "Priority" } th scope="col" { "Waiting" } th scope="col" { "State" } } }
                        tbody {
                            @for c in b.queue {
                                tr data-call=(c.call_sid) {
                                    td { (c.position) }
                                    td.caller { (c.from) }
                                    td { (c.priority) }
                                    td { (since(c.enqueued_at, b.now)) }
                                    td { (serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="agents-h" {
            h2 #agents-h { "Agents" }
            @if b.agents.is_empty() {
                p { "No agents registered." }
            } @else {
                div.scroll {
                    table #agents {
                        thead { tr { th scope="col" { "Agent" } th scope="col" { "Status" } th scope="col" { "Activity" } th scope="col" { "In state" } th scope="col" { "Actions" } } }
                        tbody {
                            @for (a, call) in b.agents {
                                tr data-agent=(a.id) {
                                    td.name { (a.name) }
                                    td { (status_label(a)) }
                                    td {
                                        (activity_label(a.activity))
                                        @if let Some(from) = &call.from { " · " span.caller { (from) } }
                                    }
                                    td { (agent_timer(a, call, b.now)) }
                                    td {
                                        @if a.call_sid.is_some() || a.activity == Activity::WrapUp {
                                            form.inline method="post" action=(format!("/wallboard/agents/{}/release", a.id)) {
                                                (csrf_field(csrf))
                                                button type="submit" .secondary aria-label=(format!("Release {}", a.name)) { "Release" }
                                            }
                                        }
                                        form.inline method="post" action=(format!("/wallboard/agents/{}/sign-in-link", a.id)) {
                                            (csrf_field(csrf))
                                            button type="submit" .secondary aria-label=(format!("Sign-in link for {}", a.name)) { "Sign-in link" }
                                        }
                                        @if a.status == EffectiveStatus::Paused {
                                            form.inline method="post" action=(format!("/wallboard/agents/{}/resume", a.id)) {
                                                (csrf_field(csrf))
                                                button type="submit" aria-label=(format!("Resume {}", a.name)) { "Resume" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (figures(b.today))
        section aria-labelledby="recent-h" {
            h2 #recent-h { "Recent calls" }
            (calls_table(b.recent, "No calls yet."))
        }
        section aria-labelledby="vm-h" {
            h2 #vm-h { "Voicemail inbox" }
            @if b.voicemails.is_empty() {
                p { "No open voicemails." }
            } @else {
                ul #inbox .items {
                    @for v in b.voicemails {
                        li data-call=(v.call_sid) data-state=(v.state.as_str()) {
                            (voicemail_body(v))
                            p { "State: " (v.state.as_str())
                                @if let Some(owner) = v.assigned_to.and_then(|id| b.agents.iter().find(|(a, _)| a.id == id)) {
                                    " · " (owner.0.name)
                                }
                            }
                            form.inline method="post" action=(format!("/wallboard/voicemails/{}/assign", v.call_sid)) {
                                (csrf_field(csrf))
                                label for=(format!("assign-{}", v.call_sid)) { "Assign to" }
                                select id=(format!("assign-{}", v.call_sid)) name="agent_id" {
                                    @for (a, _) in b.agents {
                                        option value=(a.id) selected[v.assigned_to == Some(a.id)] { (a.name) }
                                    }
                                }
                                button type="submit" { "Assign" }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="audit-h" {
            h2 #audit-h { "Audit chain" }
            @match b.audit {
                Some((at, r)) => {
                    p #audit-status data-ok=(r.ok) {
                        @if r.ok { "Intact: " (r.entries) " entries verified" } @else { "BROKEN: see GET /audit/verify" }
                        " (checked " time datetime=(time(*at)) { (at.format("%H:%M:%S UTC")) } ")"
                    }
                }
                None => { p #audit-status { "Not verified yet." } }
            }
        }
    }
}

/// Time in the agent's state: the call's talk time, the ring time, the wrap-up left, or
/// since the presence (or pause) last changed, or since it became free.
fn agent_timer(a: &AgentView, call: &CurrentCall, now: DateTime<Utc>) -> Markup {
    let state_since = match a.status {
        EffectiveStatus::Available => a.presence_since.max(a.idle_since),
        EffectiveStatus::Offline => a
            .last_heartbeat_at
            .map_or(a.presence_since, |h| h.max(a.presence_since)),
        _ => a.presence_since,
    };
    match (
        a.activity,
        a.wrap_up_until,
        call.answered_at,
        call.offered_at,
    ) {
        (Activity::WrapUp, Some(t), _, _) => html! { (until(t, now)) " left" },
        (Activity::OnCall, _, Some(t), _) => since(t, now),
        (Activity::Reserved | Activity::Ringing, _, _, Some(t)) => since(t, now),
        _ => since(state_since.min(now), now),
    }
}

fn figures(s: &Summary) -> Markup {
    html! {
        section aria-labelledby="figures-h" {
            h2 #figures-h { "Today" }
            dl.figures #today {
                div { dt { "Offered" } dd data-figure="offered" { (s.offered) } }
                div { dt { "Answered" } dd data-figure="answered" { (s.answered) } }
                div { dt { "Abandoned" } dd data-figure="abandoned" { (s.abandoned) } }
                div { dt { "Voicemail" } dd data-figure="voicemail" { (s.voicemail) } }
                div { dt { "Service level (" (s.service_level_seconds) " s)" } dd data-figure="service_level_pct" { (percent(s.service_level_pct)) } }
                div { dt { "ASA" } dd data-figure="asa_seconds" { (seconds(s.asa_seconds)) } }
                div { dt { "AHT" } dd data-figure="aht_seconds" { (seconds(s.aht_seconds)) } }
                div { dt { "Abandonment" } dd data-figure="abandonment_rate_pct" { (percent(s.abandonment_rate_pct)) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_like_clocks() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(75), "1:15");
        assert_eq!(clock(3_725), "1:02:05");
    }

    #[test]
    fn markup_in_data_is_text() {
        let page = problem("<b>t</b>", "<script>alert(1)</script>", "/console").into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}
