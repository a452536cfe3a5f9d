//! Timestamps in SQLite: TEXT `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC, fixed width, so they
//! compare and sort as text and SQLite's date functions read them.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Sqlite, Type};

/// The stored form of a timestamp.
pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// A UTC timestamp stored as fixed-width text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlTime(pub DateTime<Utc>);

impl SqlTime {
    /// The text form.
    #[must_use]
    pub fn text(&self) -> String {
        self.0.format(FORMAT).to_string()
    }

    /// Reads the text form (also accepts RFC 3339 with an offset).
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
    }
}
