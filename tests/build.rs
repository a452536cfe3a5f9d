include!("../tools/pg_cfg.rs");

/// Sets `cfg(browser)` when chromedriver is installed (`CHROMEDRIVER`, or on the `PATH`):
/// the console's browser tests run; without it they are ignored and counted as skipped.
fn browser_cfg() {
    println!("cargo::rustc-check-cfg=cfg(browser)");
    println!("cargo::rerun-if-env-changed=CHROMEDRIVER");
    println!("cargo::rerun-if-env-changed=PATH");
    let driver = std::env::var_os("CHROMEDRIVER")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("chromedriver"))
                    .find(|p| p.is_file())
            })
        });
    match driver {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.display());
            println!("cargo::rustc-cfg=browser");
        }
        // A path that does not exist: the script runs again at every build, so installing
        // chromium-driver later turns the browser tests on.
        None => println!("cargo::rerun-if-changed=/usr/bin/chromedriver"),
    }
}

fn main() {
    pg_cfg();
    browser_cfg();
}
