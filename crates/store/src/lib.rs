//! # store: SQLite and PostgreSQL behind the domain's ports
//!
//! The `DATABASE_URL` scheme picks the backend: `sqlite:` (the embedded default; the file
//! and its folder are created on first run) or `postgres://` / `postgresql://` (production,
//! and several server instances behind a load balancer). Both adapters implement
//! [`agents::AgentStore`], [`call_center::CallStore`] and [`audit::AuditLog`], and pass the
//! same contract suites. Migrations live in `migrations/sqlite` and `migrations/postgres`
//! at the workspace root and are embedded in the binary.
//!
//! Nothing that matters is held in process memory: two instances on one PostgreSQL behave
//! as one (optimistic versions on calls, compare-and-set on agents, advisory-locked audit
//! sealing).

mod agents;
mod audit;
mod calls;
mod committed;
mod common;
pub mod postgres;
mod reports;
mod rows;
#[macro_use]
mod schema;
mod queue;
pub mod sqlite;
mod types;
mod voicemails;

use std::sync::Arc;
use std::time::Duration;

use ::agents::AgentStore;
use ::audit::AuditLog;
use call_center::CallStore;
use call_center::reports::ReportStore;
use thiserror::Error;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use types::{SqlId, SqlTime};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a `DATABASE_URL` names.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for any other scheme.
    pub fn of(url: &str) -> Result<Self, StoreError> {
        let lower = url.trim().to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Its name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Opening or migrating the store failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("must start with sqlite: or postgres:// (or postgresql://)")]
    UnsupportedUrl,
    /// Anything else; the cause says what.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `DATABASE_URL`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a connection before failing (keeps `/readyz` and the
    /// fallback path quick when the database is down).
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for every connection: a statement stuck on a lock
    /// or a stalled server fails after this long instead of holding its connection.
    pub statement_timeout: Duration,
}

impl StoreOptions {
    /// Defaults for `url`: 10 connections, 3 s acquire timeout, 10 s statement timeout.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
enum Inner {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// The opened store: one pool, every port.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Inner,
}

impl Store {
    /// Opens the store (lazily: connections are made on first use, so a server can start,
    /// and report "not ready", while PostgreSQL is down).
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`], or a malformed URL or uncreatable SQLite folder.
    pub fn open(options: &StoreOptions) -> Result<Self, StoreError> {
        let inner = match Backend::of(&options.url)? {
            Backend::Sqlite => Inner::Sqlite(SqliteStore::connect_lazy(
                &options.url,
                options.max_connections,
                options.acquire_timeout,
            )?),
            Backend::Postgres => Inner::Postgres(PgStore::connect_lazy(options)?),
        };
        Ok(Self { inner })
    }

    /// Which backend.
    #[must_use]
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs pending migrations.
    ///
    /// # Errors
    /// When a migration fails or the database is unreachable.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => s.migrate().await?,
            Inner::Postgres(p) => p.migrate().await?,
        }
        Ok(())
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => s.ping().await?,
            Inner::Postgres(p) => p.ping().await?,
        }
        Ok(())
    }

    /// The URL secret kept in the database (see the backends' `url_secret`).
    ///
    /// # Errors
    /// When the database refuses.
    pub async fn url_secret(&self, candidate: &str) -> Result<String, StoreError> {
        Ok(match &self.inner {
            Inner::Sqlite(s) => s.url_secret(candidate).await?,
            Inner::Postgres(p) => p.url_secret(candidate).await?,
        })
    }

    /// A number that grows with every stored change (the newest audit entry's id: every
    /// change of a call, an agent or a voicemail writes one in its own transaction), on
    /// every instance alike. Live pages poll it to learn that something changed.
    ///
    /// # Errors
    /// When the database refuses.
    pub async fn change_mark(&self) -> Result<i64, StoreError> {
        Ok(match &self.inner {
            Inner::Sqlite(s) => s.change_mark().await?,
            Inner::Postgres(p) => p.change_mark().await?,
        })
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        match &self.inner {
            Inner::Sqlite(s) => s.close().await,
            Inner::Postgres(p) => p.close().await,
        }
    }

    /// The agent store port.
    #[must_use]
    pub fn agents(&self) -> Arc<dyn AgentStore> {
        match &self.inner {
            Inner::Sqlite(s) => Arc::new(s.clone()),
            Inner::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// The call store port.
    #[must_use]
    pub fn calls(&self) -> Arc<dyn CallStore> {
        match &self.inner {
            Inner::Sqlite(s) => Arc::new(s.clone()),
            Inner::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// The audit log port.
    #[must_use]
    pub fn audit(&self) -> Arc<dyn AuditLog> {
        match &self.inner {
            Inner::Sqlite(s) => Arc::new(s.clone()),
            Inner::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// The voicemail inbox port.
    #[must_use]
    pub fn voicemails(&self) -> Arc<dyn call_center::VoicemailStore> {
        match &self.inner {
            Inner::Sqlite(s) => Arc::new(s.clone()),
            Inner::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// The queue port.
    #[must_use]
    pub fn queue(&self) -> Arc<dyn call_center::QueueStore> {
        match &self.inner {
            Inner::Sqlite(s) => Arc::new(s.clone()),
            Inner::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// The report port.
    #[must_use]
    pub fn reports(&self) -> Arc<dyn ReportStore> {
        match &self.inner {
            Inner::Sqlite(s) => Arc::new(s.clone()),
            Inner::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// The SQLite adapter, when that is the backend.
    #[must_use]
    pub fn as_sqlite(&self) -> Option<&SqliteStore> {
        match &self.inner {
            Inner::Sqlite(s) => Some(s),
            Inner::Postgres(_) => None,
        }
    }

    /// The PostgreSQL adapter, when that is the backend.
    #[must_use]
    pub fn as_postgres(&self) -> Option<&PgStore> {
        match &self.inner {
            Inner::Postgres(p) => Some(p),
            Inner::Sqlite(_) => None,
        }
    }
}

/// `url` with any password replaced by `***`, for logs and `config check`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(Backend::of("sqlite://data/x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(
            Backend::of("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(matches!(
            Backend::of("mysql://x"),
            Err(StoreError::UnsupportedUrl)
        ));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/cc"),
            "postgres://app:***@db:5432/cc"
        );
        assert_eq!(redact_url("postgres://app@db/cc"), "postgres://app@db/cc");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
