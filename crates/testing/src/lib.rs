//! Test support shared by the store and end-to-end tests.
//!
//! - SQLite: a fresh file in a temporary folder per test ([`TestDb::sqlite`]).
//! - PostgreSQL: a fresh database per test, created from `TEST_DATABASE_URL` and dropped
//!   afterwards ([`TestDb::postgres`]). Without `TEST_DATABASE_URL` the Postgres tests say
//!   loudly that they skipped; with `CI_REQUIRE_POSTGRES=1` (set by `make ci`) a missing URL
//!   is a failure.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a panic is a failed test

use std::sync::Once;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The admin URL for PostgreSQL tests, or `None` (after printing why) when they should be
/// skipped.
///
/// # Panics
/// When `CI_REQUIRE_POSTGRES=1` and `TEST_DATABASE_URL` is unset.
#[must_use]
pub fn postgres_url() -> Option<String> {
    static WARN: Once = Once::new();
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CI_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set: the PostgreSQL suite must run"
            );
            WARN.call_once(|| {
                eprintln!(
                    "\n*** TEST_DATABASE_URL is not set: PostgreSQL tests are SKIPPED. ***\n\
                     *** e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test   ***\n"
                );
            });
            None
        }
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    /// The URL to give the code under test.
    pub url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A new SQLite file (with a folder that does not exist yet, to exercise creation).
    #[must_use]
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("nested").join("callcenter.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            kind: Kind::Sqlite(dir),
        }
    }

    /// A new, empty PostgreSQL database, or `None` when the Postgres suite is skipped.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_url()?;
        let name = format!("cc_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Some(Self {
            url,
            kind: Kind::Postgres { admin_url, name },
        })
    }

    /// Whether this is a PostgreSQL database.
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }
}

/// `url` pointing at database `name` instead.
#[must_use]
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = match base.rsplit_once('/') {
        Some((p, _)) if p.contains("://") && p.len() > p.find("://").unwrap_or(0) + 3 => {
            p.to_owned()
        }
        _ => base.to_owned(),
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { admin_url, name } = &self.kind {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop may run inside a runtime; do the async work on a thread of its own.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await
                        .ok()
                })
            });
            let _ = done.join();
        }
    }
}

/// `host:port` of a PostgreSQL URL.
#[must_use]
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    })
}

/// `url` with its `host:port` replaced by `127.0.0.1:<port>`.
#[must_use]
pub fn via_port(url: &str, port: u16) -> String {
    match host_port(url) {
        Some(hp) => {
            let bare = hp.strip_suffix(":5432").unwrap_or(&hp);
            url.replacen(&hp, &format!("127.0.0.1:{port}"), 1).replacen(
                &format!("@{bare}/"),
                &format!("@127.0.0.1:{port}/"),
                1,
            )
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_swapped() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
