//! The data shape, written once: each table's columns with their Rust types (and the
//! PostgreSQL type of each, for `unnest` casts). Both backends build their column lists,
//! placeholders, binds and decoders from these definitions, so adding a column is one line
//! here, one in each migration, and its mapping in [`crate::rows`].

use std::fmt::Write as _;

use crate::types::{SqlId, SqlTime};

/// `count` placeholders `$first, …` (both backends read `$n` through sqlx).
pub(crate) fn params(first: usize, count: usize) -> String {
    let mut out = String::new();
    for n in first..first + count {
        if n > first {
            out.push_str(", ");
        }
        let _ = write!(out, "${n}");
    }
    out
}

/// A table definition: its name, columns, and PostgreSQL column types.
pub(crate) trait Table {
    /// The table.
    const NAME: &'static str;
    /// Its columns, in row order.
    const COLUMNS: &'static [&'static str];
    /// The PostgreSQL type of each column, for casts of bound arrays.
    const PG_TYPES: &'static [&'static str];

    /// `a, b, c`, or `t.a, t.b, t.c` with an alias.
    fn columns(alias: Option<&str>) -> String {
        let prefix = alias.map(|a| format!("{a}.")).unwrap_or_default();
        Self::COLUMNS
            .iter()
            .map(|c| format!("{prefix}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT <columns> FROM <table> ` (append the rest).
    fn select() -> String {
        format!("SELECT {} FROM {} ", Self::columns(None), Self::NAME)
    }

    /// `INSERT INTO <table> (<columns>) VALUES (<placeholders from first>)`.
    fn insert(first: usize) -> String {
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            Self::NAME,
            Self::columns(None),
            params(first, Self::COLUMNS.len())
        )
    }

    /// `INSERT INTO <table> (<columns>) VALUES (…), (…)`: `rows` rows, numbered from `$1`
    /// (SQLite writes several rows in one statement: one trip to its thread, not `rows`).
    fn insert_rows(rows: usize) -> String {
        let n = Self::COLUMNS.len();
        let values: Vec<String> = (0..rows)
            .map(|r| format!("({})", params(1 + r * n, n)))
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            Self::NAME,
            Self::columns(None),
            values.join(", ")
        )
    }

    /// `col = <placeholder>, …` for every column but the first `skip`, numbered so that
    /// column `i` is parameter `first + i`.
    fn assignments(first: usize, skip: usize) -> String {
        Self::COLUMNS
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, c)| format!("{c} = ${}", first + i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// PostgreSQL: `$first::t1[], $first+1::t2[], …`, one bound array per column.
    fn arrays(first: usize) -> String {
        Self::PG_TYPES
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("${}::{ty}[]", first + i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// PostgreSQL: `unnest(<arrays>) AS <alias>(<columns>)`.
    fn unnest(first: usize, alias: &str) -> String {
        format!(
            "unnest({}) AS {alias}({})",
            Self::arrays(first),
            Self::columns(None)
        )
    }
}

/// A row's columns as rusqlite parameters, in order (SQLite's writer thread).
pub(crate) trait PushParams {
    /// Appends every column, in order.
    fn push_params<'a>(&'a self, out: &mut Vec<&'a dyn rusqlite::ToSql>);
}

/// Defines a row struct for a table, with:
/// - [`Table`] (name, columns, PostgreSQL types);
/// - `decode_at(row, first)`: reads the columns from position `first` of any backend's row
///   (so one query can carry several records side by side);
/// - `sqlx::FromRow` on any backend;
/// - `bind(q)`: binds every column in order on any backend;
/// - [`PushParams`] and `from_rusqlite(row, first)`: the same for SQLite's writer thread and
///   inline reads (rusqlite);
/// - `bind_arrays(rows, q)`: PostgreSQL, one array per column (for `unnest`).
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub(crate) struct $name:ident in $table:literal {
            $($(#[$fmeta:meta])* $field:ident : $ty:ty => $pg:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct $name {
            $($(#[$fmeta])* pub $field: $ty),+
        }

        impl $crate::schema::Table for $name {
            const NAME: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),+];
            const PG_TYPES: &'static [&'static str] = &[$($pg),+];
        }

        impl $name {
            /// Decodes the columns starting at position `first` of `row`.
            #[allow(unused_assignments)]
            pub fn decode_at<'r, R>(row: &'r R, first: usize) -> Result<Self, sqlx::Error>
            where
                R: sqlx::Row,
                usize: sqlx::ColumnIndex<R>,
                $($ty: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,)+
            {
                let mut at = first;
                Ok(Self {
                    $($field: {
                        let value = row.try_get(at)?;
                        at += 1;
                        value
                    },)+
                })
            }

            /// Binds every column, in order.
            #[allow(dead_code)]
            pub fn bind<'q, DB>(
                self,
                q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
            ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
            where
                DB: sqlx::Database,
                $($ty: sqlx::Encode<'q, DB> + sqlx::Type<DB>,)+
            {
                q$(.bind(self.$field))+
            }

            /// SQLite's inline reads: decodes the columns starting at position `first`.
            #[allow(dead_code, unused_assignments)]
            pub fn from_rusqlite(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
                let mut at = first;
                Ok(Self {
                    $($field: {
                        let value = row.get(at)?;
                        at += 1;
                        value
                    },)+
                })
            }


            /// PostgreSQL: binds one array per column (for [`$crate::schema::Table::unnest`]).
            #[allow(dead_code)]
            pub fn bind_arrays<'q>(
                rows: &[Self],
                q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
            ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
                q$(.bind(rows.iter().map(|r| r.$field.clone()).collect::<Vec<$ty>>()))+
            }
        }

        impl $crate::schema::PushParams for $name {
            fn push_params<'a>(&'a self, out: &mut Vec<&'a dyn rusqlite::ToSql>) {
                $(out.push(&self.$field);)+
            }
        }

        impl<'r, R> sqlx::FromRow<'r, R> for $name
        where
            R: sqlx::Row,
            usize: sqlx::ColumnIndex<R>,
            $($ty: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,)+
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Self::decode_at(row, 0)
            }
        }
    };
}

table! {
    /// An `agents` row (the heartbeat token hash is written on insert only, never read).
    pub(crate) struct AgentRow in "agents" {
        id: SqlId => "uuid",
        name: String => "text",
        sip_uri: String => "text",
        sip_key: String => "text",
        presence: String => "text",
        paused_reason: Option<String> => "text",
        presence_since: SqlTime => "timestamptz",
        last_heartbeat_at: Option<SqlTime> => "timestamptz",
        current_call_sid: Option<String> => "text",
        idle_since: SqlTime => "timestamptz",
        calls_answered: i64 => "int8",
        calls_missed: i64 => "int8",
        total_talk_seconds: i64 => "int8",
        created_at: SqlTime => "timestamptz",
        updated_at: SqlTime => "timestamptz",
        missed_in_a_row: i32 => "int4",
        offer_call_sid: Option<String> => "text",
        offer_ringing: bool => "bool",
        no_answer_until: Option<SqlTime> => "timestamptz",
    }
}

table! {
    /// A `calls` row. Its first column is the key, its `version` the optimistic lock.
    pub(crate) struct CallRow in "calls" {
        call_sid: String => "text",
        from_number: String => "text",
        to_number: String => "text",
        account_sid: Option<String> => "text",
        connection_id: Option<String> => "text",
        status: String => "text",
        outcome: Option<String> => "text",
        attempts: i32 => "int4",
        round_open: bool => "bool",
        answered_by: Option<SqlId> => "uuid",
        answered_leg_sid: Option<String> => "text",
        started_at: SqlTime => "timestamptz",
        answered_at: Option<SqlTime> => "timestamptz",
        ended_at: Option<SqlTime> => "timestamptz",
        talk_seconds: Option<i64> => "int8",
        recording_url: Option<String> => "text",
        recording_sid: Option<String> => "text",
        voicemail_started_at: Option<SqlTime> => "timestamptz",
        voicemail_recording_url: Option<String> => "text",
        voicemail_recording_sid: Option<String> => "text",
        voicemail_duration_seconds: Option<i64> => "int8",
        voicemail_transcription: Option<String> => "text",
        recording_notice_played: bool => "bool",
        redacted_at: Option<SqlTime> => "timestamptz",
        version: i64 => "int8",
        updated_at: SqlTime => "timestamptz",
        enqueued_at: Option<SqlTime> => "timestamptz",
        priority: i32 => "int4",
        delivery: Option<String> => "text",
        delivery_at: Option<SqlTime> => "timestamptz",
        push_attempts: i32 => "int4",
        announced_position: Option<i32> => "int4",
        announced_at: Option<SqlTime> => "timestamptz",
    }
}

table! {
    /// An `offers` row: one agent rung in one round. Key: the first three columns.
    pub(crate) struct OfferRow in "offers" {
        call_sid: String => "text",
        attempt: i32 => "int4",
        agent_id: SqlId => "uuid",
        sip_uri: String => "text",
        sip_key: String => "text",
        leg_sid: Option<String> => "text",
        state: String => "text",
        leg_status: Option<String> => "text",
        offered_at: SqlTime => "timestamptz",
        answered_at: Option<SqlTime> => "timestamptz",
        ended_at: Option<SqlTime> => "timestamptz",
        closed_at: Option<SqlTime> => "timestamptz",
        leg_duration: Option<i64> => "int8",
        talk_seconds: Option<i64> => "int8",
        talk_final: bool => "bool",
        misses_before: i32 => "int4",
    }
}

/// Columns of `offers` after the key and the fields fixed when the round opened
/// (`sip_uri`, `sip_key`, `offered_at`): what an upsert may change.
pub(crate) const OFFER_MUTABLE: &[&str] = &[
    "leg_sid",
    "state",
    "leg_status",
    "answered_at",
    "ended_at",
    "closed_at",
    "leg_duration",
    "talk_seconds",
    "talk_final",
];

/// `ON CONFLICT (<key>) DO UPDATE SET c = excluded.c, …` for the offer upsert, the same on
/// both backends.
pub(crate) fn offer_upsert_suffix() -> String {
    let sets = OFFER_MUTABLE
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(" ON CONFLICT (call_sid, attempt, agent_id) DO UPDATE SET {sets}")
}

table! {
    /// A round opening: a new `dial_attempts` row.
    pub(crate) struct RoundOpenedRow in "dial_attempts" {
        call_sid: String => "text",
        attempt: i32 => "int4",
        started_at: SqlTime => "timestamptz",
        offered: i32 => "int4",
    }
}

table! {
    /// A round closing: the end of a `dial_attempts` row.
    pub(crate) struct RoundClosedRow in "dial_attempts" {
        call_sid: String => "text",
        attempt: i32 => "int4",
        ended_at: SqlTime => "timestamptz",
        result: String => "text",
    }
}

table! {
    /// Not a table: an agent effect as bound for the `UPDATE agents` of an apply (counters
    /// added; engage and release as compare-and-sets against the call).
    pub(crate) struct EffectRow in "agent_effects" {
        agent_id: SqlId => "uuid",
        answered: i64 => "int8",
        missed: i64 => "int8",
        talk: i64 => "int8",
        engage: bool => "bool",
        release: bool => "bool",
        wrap_up_until: Option<SqlTime> => "timestamptz",
        no_answer_until: Option<SqlTime> => "timestamptz",
        offer: Option<String> => "text",
    }
}

table! {
    /// A `webhook_receipts` row.
    pub(crate) struct ReceiptRow in "webhook_receipts" {
        key: String => "text",
        fingerprint: String => "text",
        received_at: SqlTime => "timestamptz",
    }
}

table! {
    /// The columns of an `audit_log` entry as written (pending, before the sealer chains it).
    pub(crate) struct AuditEventRow in "audit_log" {
        occurred_at: SqlTime => "timestamptz",
        actor: String => "text",
        action: String => "text",
        call_sid: Option<String> => "text",
        agent_id: Option<SqlId> => "uuid",
        data: String => "text",
    }
}

table! {
    /// The chain columns of an `audit_log` entry (read after the event's columns).
    pub(crate) struct AuditSealRow in "audit_log" {
        id: i64 => "int8",
        seq: Option<i64> => "int8",
        prev_digest: Option<String> => "text",
        digest: Option<String> => "text",
    }
}

/// `SELECT` list of a whole audit entry: the event's columns, then the chain's.
pub(crate) fn audit_columns() -> String {
    format!(
        "{}, {}",
        AuditEventRow::columns(None),
        AuditSealRow::columns(None)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_built_from_the_definitions() {
        assert_eq!(params(1, 3), "$1, $2, $3");
        assert_eq!(
            ReceiptRow::insert(1),
            "INSERT INTO webhook_receipts (key, fingerprint, received_at) VALUES ($1, $2, $3)"
        );
        assert_eq!(
            ReceiptRow::unnest(4, "r"),
            "unnest($4::text[], $5::text[], $6::timestamptz[]) AS r(key, fingerprint, received_at)"
        );
        assert_eq!(
            ReceiptRow::assignments(1, 1),
            "fingerprint = $2, received_at = $3"
        );
        assert_eq!(CallRow::COLUMNS.len(), CallRow::PG_TYPES.len());
        assert_eq!(CallRow::COLUMNS[0], "call_sid");
    }
}
