//! Column types that mean the same on both backends, so one row definition decodes and
//! binds on either:
//!
//! - [`SqlTime`]: a UTC timestamp; `TIMESTAMPTZ` on PostgreSQL, fixed-width TEXT
//!   `YYYY-MM-DDTHH:MM:SS.ffffffZ` on SQLite (it compares and sorts as text, and SQLite's date
//!   functions read it);
//! - [`SqlId`]: a UUID; `UUID` on PostgreSQL, hyphenated TEXT on SQLite.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

/// PostgreSQL reads and writes the wrapper exactly as the wrapped type.
macro_rules! pg_delegate {
    ($wrapper:ty, $inner:ty) => {
        impl Type<Postgres> for $wrapper {
            fn type_info() -> PgTypeInfo {
                <$inner as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <$inner as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $wrapper {
            fn array_type_info() -> PgTypeInfo {
                <$inner as PgHasArrayType>::array_type_info()
            }
        }

        impl Encode<'_, Postgres> for $wrapper {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                Encode::<Postgres>::encode_by_ref(&self.0, buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $wrapper {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                <$inner as Decode<Postgres>>::decode(value).map(Self)
            }
        }
    };
}

/// The stored form of a timestamp on SQLite.
pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// A UTC timestamp (microsecond precision on both backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SqlTime(pub DateTime<Utc>);

impl SqlTime {
    /// The SQLite text form.
    #[must_use]
    pub fn text(&self) -> String {
        use chrono::{Datelike as _, Timelike as _};
        // What `FORMAT` gives, written directly: chrono's `format` parses the pattern on every
        // call, and the hot path writes several timestamps per change.
        let t = self.0;
        let mut out = String::with_capacity(27);
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.nanosecond() / 1_000 % 1_000_000
            ),
        );
        out
    }

    /// Reads the SQLite text form (also accepts RFC 3339 with an offset).
    ///
    /// # Errors
    /// When the text is neither.
    pub fn parse(s: &str) -> Result<Self, chrono::ParseError> {
        match NaiveDateTime::parse_from_str(s, FORMAT) {
            Ok(naive) => Ok(Self(naive.and_utc())),
            Err(_) => DateTime::parse_from_rfc3339(s).map(|d| Self(d.with_timezone(&Utc))),
        }
    }
}

impl From<DateTime<Utc>> for SqlTime {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl From<SqlTime> for DateTime<Utc> {
    fn from(t: SqlTime) -> Self {
        t.0
    }
}

impl Type<Sqlite> for SqlTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for SqlTime {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for SqlTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Self::parse(s)?)
    }
}

pg_delegate!(SqlTime, DateTime<Utc>);

/// A UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SqlId(pub Uuid);

impl Type<Sqlite> for SqlId {
    fn type_info() -> SqliteTypeInfo {
        <Hyphenated as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <Hyphenated as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for SqlId {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.0.hyphenated(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for SqlId {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <Hyphenated as Decode<Sqlite>>::decode(value).map(|h| Self(h.into_uuid()))
    }
}

pg_delegate!(SqlId, Uuid);

/// The SQLite writer thread (rusqlite) binds the same text as sqlx does.
impl rusqlite::ToSql for SqlTime {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.text()))
    }
}

/// Inline reads (rusqlite) decode the same text as sqlx does.
impl rusqlite::types::FromSql for SqlTime {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        Self::parse(text).map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

/// Inline reads (rusqlite) decode the same text as sqlx does.
impl rusqlite::types::FromSql for SqlId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

/// The SQLite writer thread (rusqlite) binds the same text as sqlx does.
impl rusqlite::ToSql for SqlId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(
            self.0.hyphenated().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn text_is_fixed_width_and_round_trips() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        assert_eq!(SqlTime(t).text(), "2026-11-24T10:00:00.000000Z");
        let later = t + chrono::Duration::microseconds(1);
        assert!(SqlTime(t).text() < SqlTime(later).text());
        assert_eq!(SqlTime::parse(&SqlTime(later).text()).unwrap().0, later);
        assert_eq!(SqlTime::parse("2026-11-24T10:00:00+00:00").unwrap().0, t);
        let odd =
            Utc.with_ymd_and_hms(987, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(67);
        assert_eq!(SqlTime(odd).text(), odd.format(FORMAT).to_string());
    }
}
