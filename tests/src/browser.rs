//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`),
//! for the tests of the agent console and the wallboard. `CONSOLE_SCREENSHOTS=<dir>` makes
//! [`Browser::screenshot`] write PNGs there (`make screenshots` does, into `docs/img/`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// The chromedriver binary (`CHROMEDRIVER`, else `chromedriver` on the `PATH`).
fn chromedriver() -> PathBuf {
    std::env::var_os("CHROMEDRIVER").map_or_else(|| PathBuf::from("chromedriver"), PathBuf::from)
}

/// The Chromium binary (`CHROMIUM`, else Debian's `/usr/bin/chromium`).
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// How long the helpers wait for the page by default.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One browser session and its chromedriver.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session (a phone-sized
    /// window with `phone`).
    ///
    /// # Panics
    /// When chromedriver or Chromium cannot start.
    pub async fn start(phone: bool) -> Self {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let size = if phone { "390,844" } else { "1280,1000" };
        let mut caps = serde_json::map::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={size}")],
            }),
        );
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Self { client, driver }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    /// Waits until an element matches `css`.
    pub async fn wait_for(&self, css: &str) {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {PATIENCE:?}: {e}"));
    }

    /// Waits until no element matches `css` (at most `within`); whether it went.
    pub async fn gone_within(&self, css: &str, within: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if self.client.find(Locator::Css(css)).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits until an element matches `css` (at most `within`); whether it came.
    pub async fn there_within(&self, css: &str, within: Duration) -> bool {
        self.client
            .wait()
            .at_most(within)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .is_ok()
    }

    /// The text of the first element matching `css` (found again when a live update replaced
    /// it, like [`Browser::click`]).
    pub async fn text(&self, css: &str) -> String {
        self.on_element(css, "reading", |e| async move { e.text().await })
            .await
    }

    /// Waits until the text of `css` contains `needle`; the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{css} never said {needle:?}; last: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `value` into the field `css`.
    pub async fn fill(&self, css: &str, value: &str) {
        self.wait_for(css).await;
        let field = self.client.find(Locator::Css(css)).await.expect("field");
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("typing");
    }

    /// Clicks the first element matching `css`, found again when a live update replaced it.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "clicking", |e| async move { e.click().await })
            .await;
    }

    /// Chooses `value` in the `<select>` at `css`, found again when a live update replaced it.
    pub async fn select(&self, css: &str, value: &str) {
        self.on_element(css, "choosing", |e| async move {
            e.select_by_value(value).await
        })
        .await;
    }

    /// Runs `act` on the first element matching `css`. A live update may replace the element
    /// between finding and acting on it (a stale reference): it is then found again.
    async fn on_element<T, F, Fut>(&self, css: &str, what: &str, act: F) -> T
    where
        F: Fn(Element) -> Fut,
        Fut: Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        for _ in 0..50 {
            self.wait_for(css).await;
            let found = self.client.find(Locator::Css(css)).await;
            let outcome = match found {
                Ok(element) => act(element).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(value) => return value,
                Err(e) if is_stale(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{what} {css}: {e}"),
            }
        }
        panic!("{what} {css}: replaced on every try");
    }

    /// Runs `script` in the page.
    pub async fn run(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.expect("script")
    }

    /// Saves a PNG of the page as `<CONSOLE_SCREENSHOTS>/<name>.png`, when asked to.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Whether a WebDriver error says the element went away: replaced by a live update between
/// finding it and using it, or gone for a moment while the page re-renders.
fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    let text = e.to_string();
    text.contains("stale element") || text.contains("no such element")
}

impl Drop for Browser {
    /// Stops chromedriver, also when a test failed half-way.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
