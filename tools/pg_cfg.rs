// Included by the build scripts of the crates with PostgreSQL tests: sets `cfg(pg)` when
// TEST_DATABASE_URL is set, so those tests run; without it they are `#[ignore]`d and
// `cargo test` counts them as ignored (`make test` says how many), never as passed.
fn pg_cfg() {
    println!("cargo::rustc-check-cfg=cfg(pg)");
    println!("cargo::rerun-if-env-changed=TEST_DATABASE_URL");
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=pg");
    }
}
