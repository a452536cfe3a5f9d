//! What the store's benchmark examples share (included with `#[path]`; not an example).

/// The `p`-quantile (0–1) of `sorted`, nearest rank.
#[allow(dead_code)] // each example uses what it needs
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Argument `i` parsed, or `default`.
#[allow(dead_code)]
pub fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}
