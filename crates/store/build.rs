include!("../../tools/pg_cfg.rs");

fn main() {
    // Rebuild when a migration changes: they are embedded with `sqlx::migrate!`.
    println!("cargo::rerun-if-changed=../../migrations");
    pg_cfg();
}
