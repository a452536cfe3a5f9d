//! The agent console and the supervisor wallboard in a real browser (headless Chromium over
//! WebDriver) against a real server on a random port, SQLite and PostgreSQL, with the
//! simulator's signed webhooks placing the calls. Ignored (and counted as skipped) where
//! chromium-driver is not installed; `.ci/run` installs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use e2e::browser::Browser;
use e2e::{ADMIN, TestApp};
use reqwest::Method;
use serde_json::Value;

/// Wrap-up long enough to see its countdown.
const SETTINGS: &[(&str, &str)] = &[("CALL_CENTER_WRAP_UP_SECONDS", "120")];
/// What the acceptance allows between a change and the wallboard showing it.
const LIVE: Duration = Duration::from_secs(2);

/// One browser test at a time: Chromium is heavy for a small machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

macro_rules! in_browser {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(not(browser), ignore = "browser: apt-get install chromium chromium-driver")]
                async fn sqlite() {
                    let _one = super::ONE_AT_A_TIME.lock().await;
                    let app = e2e::TestApp::spawn_with(e2e::Backend::Sqlite, super::SETTINGS)
                        .await
                        .expect("a SQLite server");
                    super::$test(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(any(not(browser), not(pg)), ignore = "browser and PostgreSQL: chromium-driver, TEST_DATABASE_URL")]
                async fn postgres() {
                    let _one = super::ONE_AT_A_TIME.lock().await;
                    let app = e2e::TestApp::spawn_with(e2e::Backend::Postgres, super::SETTINGS)
                        .await
                        .expect("TEST_DATABASE_URL is set");
                    super::$test(app).await;
                }
            }
        )+
    };
}

in_browser!(
    an_agent_signs_in_takes_a_call_and_is_ready_again,
    the_wallboard_is_live_and_its_figures_are_the_reports,
    a_voicemail_is_assigned_and_done_from_the_pages,
    markup_is_text_and_wrong_credentials_are_refused,
    a_sign_in_link_works_once,
);

async fn sign_in_agent(b: &Browser, app: &TestApp, id: &str, token: &str) {
    b.goto(&format!("{}/console", app.base)).await;
    b.fill("#agent_id", id).await;
    b.fill("#token", token).await;
    b.click("button[type=submit]").await;
}

async fn sign_in_supervisor(b: &Browser, app: &TestApp, token: &str) {
    b.goto(&format!("{}/wallboard", app.base)).await;
    b.fill("#token", token).await;
    b.click("button[type=submit]").await;
}

async fn an_agent_signs_in_takes_a_call_and_is_ready_again(app: TestApp) {
    let (ann, token) = app.agent("Ann").await;
    app.api(
        Method::PUT,
        &format!("/agents/{}", ann.id),
        Some(serde_json::json!({"status": "offline"})),
    )
    .await;
    let b = Browser::start(true).await;
    sign_in_agent(&b, &app, &ann.id, &token).await;
    b.wait_text("#agent-name", "Ann").await;
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains(&token), "no token in the URL: {url}");
    b.wait_text("#status", "offline").await;
    b.click("button[name=status][value=available]").await;
    b.wait_text("#status", "available").await;
    b.screenshot("console-available").await;

    app.inbound("v3:web-1").await;
    app.reserved("v3:web-1", 1).await;
    let dial = app
        .post(
            &app.dial_agents_url("v3:web-1", 1),
            &[("CallSid", "v3:web-1")],
        )
        .await;
    assert!(dial.body.contains("sip:ann@"), "{}", dial.body);
    b.wait_for("#activity[data-activity=ringing]").await;
    assert!(
        b.text("#activity").await.contains("+13125550100"),
        "the caller's number while it rings"
    );
    b.screenshot("console-ringing").await;

    app.leg("v3:web-1", 1, &ann, "leg-web-1", "in-progress", 2)
        .await;
    b.wait_for("#call-timer .timer").await;
    assert!(
        b.text("#activity")
            .await
            .contains("On call with +13125550100")
    );
    b.screenshot("console-on-call").await;

    app.leg("v3:web-1", 1, &ann, "leg-web-1", "completed", 3)
        .await;
    app.post(
        &app.retry_dial_url("v3:web-1", 1),
        &[
            ("CallSid", "v3:web-1"),
            ("DialCallStatus", "completed"),
            ("DialCallSid", "leg-web-1"),
        ],
    )
    .await;
    app.call_status("v3:web-1", "completed").await;
    b.wait_for("#wrap-up-countdown .timer").await;
    b.screenshot("console-wrap-up").await;
    b.click("#ready-now").await;
    b.wait_for("#activity[data-activity=idle]").await;
    let agent = app.agent_json(&ann.id).await;
    assert_eq!(
        (&agent["status"], &agent["activity"]),
        (&Value::from("available"), &Value::from("idle")),
        "{agent}"
    );
    b.wait_text("#recent-h + div, #recent-h + p", "+13125550100")
        .await;

    // A form posted without its CSRF token is refused, and changes nothing.
    b.run("document.querySelector('form.controls input[name=csrf]').remove()")
        .await;
    b.click("button[name=status][value=offline]").await;
    b.wait_text("h1", "Form refused").await;
    assert_eq!(app.agent_json(&ann.id).await["status"], "available");
    b.close().await;
    app.stop().await;
}

/// A figure as the wallboard prints it.
fn shown(v: &Value, unit: &str) -> String {
    v.as_f64().map_or_else(
        || "–".to_owned(),
        |x| match unit {
            "%" => format!("{x:.1} %"),
            "s" => format!("{x:.0} s"),
            _ => format!("{x}"),
        },
    )
}

async fn the_wallboard_is_live_and_its_figures_are_the_reports(app: TestApp) {
    // The wallboard is served by a second instance; the calls reach the first: what it
    // shows comes from the database, not from one process's memory.
    let other = app.another_instance(SETTINGS).await;
    let b = Browser::start(false).await;
    b.goto(&format!("{}/wallboard", other.base)).await;
    b.fill("#token", ADMIN).await;
    b.click("button[type=submit]").await;
    b.wait_for("#queue-empty").await;

    app.inbound("v3:wall-1").await;
    assert!(
        b.there_within("tr[data-call='v3:wall-1']", LIVE).await,
        "the waiting caller shows within 2 s, without a reload"
    );
    b.screenshot("wallboard-waiting").await;

    let (ben, _) = app.agent("Ben").await;
    app.reserved("v3:wall-1", 1).await;
    app.post(
        &app.dial_agents_url("v3:wall-1", 1),
        &[("CallSid", "v3:wall-1")],
    )
    .await;
    app.leg("v3:wall-1", 1, &ben, "leg-wall-1", "in-progress", 2)
        .await;
    assert!(
        b.gone_within("tr[data-call='v3:wall-1']", LIVE).await,
        "the answered caller leaves the queue within 2 s"
    );
    b.wait_text("#agents", "on call").await;
    b.screenshot("wallboard-on-call").await;

    let today = chrono::Utc::now().format("%Y-%m-%d");
    let (_, summary) = app
        .api(Method::GET, &format!("/reports/summary?from={today}"), None)
        .await;
    for (figure, unit) in [
        ("offered", ""),
        ("answered", ""),
        ("abandoned", ""),
        ("voicemail", ""),
        ("service_level_pct", "%"),
        ("asa_seconds", "s"),
        ("aht_seconds", "s"),
        ("abandonment_rate_pct", "%"),
    ] {
        let on_page = b
            .wait_text(
                &format!("dd[data-figure={figure}]"),
                &shown(&summary[figure], unit),
            )
            .await;
        assert_eq!(
            on_page,
            shown(&summary[figure], unit),
            "{figure}: {summary}"
        );
    }
    assert!(b.text("#audit-status").await.contains("Intact"));

    // Release the agent stuck on the call; resume a paused one.
    b.click(&format!(
        "tr[data-agent='{}'] button[aria-label^=Release]",
        ben.id
    ))
    .await;
    b.wait_for(&format!(
        "tr[data-agent='{}'] button[aria-label^=Resume], #agents",
        ben.id
    ))
    .await;
    // The form's post completes after the click returns: wait for the release to land.
    let mut released = app.agent_json(&ben.id).await;
    for _ in 0..100 {
        if released["call_sid"] == Value::Null {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        released = app.agent_json(&ben.id).await;
    }
    assert_eq!(released["call_sid"], Value::Null, "{released}");
    app.api(
        Method::PUT,
        &format!("/agents/{}", ben.id),
        Some(serde_json::json!({"status": "paused", "reason": "lunch"})),
    )
    .await;
    b.wait_text(&format!("tr[data-agent='{}']", ben.id), "paused (lunch)")
        .await;
    b.click(&format!(
        "tr[data-agent='{}'] button[aria-label^=Resume]",
        ben.id
    ))
    .await;
    b.wait_text(&format!("tr[data-agent='{}']", ben.id), "available")
        .await;
    assert_eq!(app.agent_json(&ben.id).await["paused_reason"], Value::Null);
    b.close().await;
    other.stop().await;
    app.stop().await;
}

async fn a_voicemail_is_assigned_and_done_from_the_pages(app: TestApp) {
    let (cy, cy_token) = app.agent("Cy").await;
    app.leave_voicemail("v3:vm-web").await;
    let b = Browser::start(false).await;
    sign_in_supervisor(&b, &app, ADMIN).await;
    let item = "#inbox li[data-call='v3:vm-web']";
    b.wait_text(item, "Please call me back.").await;
    b.screenshot("wallboard-voicemail").await;
    // A live update may replace the item between the choice and the click (the choice is
    // then lost): choose and submit again until the item says assigned.
    for _ in 0..10 {
        b.select(&format!("{item} select[name=agent_id]"), &cy.id)
            .await;
        b.click(&format!("{item} button[type=submit]")).await;
        for _ in 0..20 {
            if b.text(item).await.contains("assigned") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if b.text(item).await.contains("assigned") {
            break;
        }
    }
    b.wait_text(item, "assigned").await;

    sign_in_agent(&b, &app, &cy.id, &cy_token).await;
    let mine = "#my-voicemails li[data-call='v3:vm-web']";
    b.wait_text(mine, "Please call me back.").await;
    b.screenshot("console-voicemail").await;
    b.click(&format!("{mine} button[type=submit]")).await;
    b.wait_text("#vm-h + p", "No voicemails assigned to you.")
        .await;

    b.goto(&format!("{}/wallboard", app.base)).await;
    b.wait_for("#vm-h").await;
    assert!(
        b.gone_within(item, LIVE).await,
        "done: not in the supervisor's inbox"
    );
    let (_, entries) = app
        .api(Method::GET, "/audit?call_sid=v3:vm-web", None)
        .await;
    let actions: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| matches!(*a, "voicemail_assigned" | "voicemail_done"))
        .collect();
    assert_eq!(
        actions,
        ["voicemail_assigned", "voicemail_done"],
        "{entries}"
    );
    b.close().await;
    app.stop().await;
}

async fn markup_is_text_and_wrong_credentials_are_refused(app: TestApp) {
    let name = "<b>Eve</b> & <i>co</i>";
    let (eve, token) = app
        .server
        .register_agent(name, "sip:eve@example.sip.telnyx.com", "available")
        .await
        .expect("register");
    let b = Browser::start(false).await;

    sign_in_supervisor(&b, &app, "not-the-admin-token").await;
    b.wait_text("#notice", "Sign-in failed").await;
    sign_in_agent(&b, &app, &eve.id, "hb_not-her-token").await;
    b.wait_text("#notice", "Sign-in failed").await;

    sign_in_agent(&b, &app, &eve.id, &token).await;
    assert_eq!(b.text("#agent-name").await, name);
    let elements = b
        .run("return document.querySelectorAll('#agent-name b, #agent-name i').length")
        .await;
    assert_eq!(elements, 0, "the name is text, not markup");

    sign_in_supervisor(&b, &app, ADMIN).await;
    b.wait_text("#agents", name).await;
    let elements = b
        .run("return document.querySelectorAll('#agents td.name b').length")
        .await;
    assert_eq!(elements, 0);
    b.close().await;
    app.stop().await;
}

async fn a_sign_in_link_works_once(app: TestApp) {
    let (dee, _) = app.agent("Dee").await;
    let (status, link) = app
        .api(
            Method::POST,
            &format!("/agents/{}/sign-in-link", dee.id),
            None,
        )
        .await;
    assert_eq!(status, 201, "{link}");
    // The link is written with the public base URL; this server listens elsewhere.
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/console/link/").unwrap()..];
    let b = Browser::start(true).await;
    b.goto(&format!("{}{path}", app.base)).await;
    b.click("#use-link").await;
    b.wait_text("#agent-name", "Dee").await;
    let now = b.client.current_url().await.unwrap();
    assert!(
        !now.as_str().contains("sl_"),
        "no token in the URL after sign-in: {now}"
    );

    // Once only.
    b.goto(&format!("{}{path}", app.base)).await;
    b.click("#use-link").await;
    b.wait_text("#notice", "does not work any more").await;
    let (_, entries) = app
        .api(Method::GET, &format!("/audit?agent_id={}", dee.id), None)
        .await;
    let actions: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("sign_in_link"))
        .collect();
    assert_eq!(
        actions,
        ["sign_in_link_created", "sign_in_link_used"],
        "{entries}"
    );
    b.close().await;
    app.stop().await;
}
