//! Logs: human-readable lines by default, one JSON object per line with `LOG_FORMAT=json`.
//! Every line logged while a request is handled carries its `request_id` (the request span).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored, as in tests).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_target(false);
    let result = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    // Already installed (tests start several servers in one process): keep the first.
    let _ = result;
}

/// An error with its whole cause chain, `outer: cause: root`, for log fields
/// (`error = %chain(&e)`): `%e` alone prints only the outermost message.
#[must_use]
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod chain_tests {
    #[test]
    fn the_chain_names_every_cause_once() {
        let root = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(root).context("writing the spool");
        let e: &(dyn std::error::Error + 'static) = e.as_ref();
        assert_eq!(super::chain(e), "writing the spool: disk on fire");
    }
}
