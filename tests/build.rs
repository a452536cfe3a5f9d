include!("../tools/pg_cfg.rs");

fn main() {
    pg_cfg();
}
