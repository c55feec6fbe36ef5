//! A user and the checked values a user is made of.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use contract::UserId;
use identity::Role;

/// A user as the API shows it; never the password hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    #[schema(value_type = i64)]
    pub id: UserId,
    #[schema(schema_with = Email::schema)]
    pub email: Email,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl User {
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get("id"),
            email: Email(row.get("email")),
            name: row.get("name"),
            role: Role::parse(row.get("role")).unwrap_or(Role::Customer),
            created_at: row.get("created_at"),
        }
    }
}

/// One part of an email address: no `@` or `.`, space or ASCII control character.
const EMAIL_PART: &str = "[^@.\\x00-\\x20\\x7f]";

platform::checked_string!(
    /// An email address, lower-cased, so that one address is one account: a local part of 1
    /// to 64 characters, `@`, and a domain of two or more dot-separated labels; at most 254
    /// characters, no spaces or control characters.
    pub Email,
    schema: |s| s
        .pattern(Some(format!("^(?:{EMAIL_PART}|\\.){{1,64}}@{EMAIL_PART}+(?:\\.{EMAIL_PART}+)+$")))
        .max_length(Some(254))
        .examples(["ada@example.com"]),
    |text| {
        let allowed = |c: char| c != '@' && !c.is_ascii_control() && c != ' ';
        let Some((local, domain)) = text.split_once('@') else {
            return Err("must be an email address like name@example.com".into());
        };
        let valid = text.chars().count() <= 254
            && (1..=64).contains(&local.chars().count())
            && local.chars().all(allowed)
            && domain.split('.').count() >= 2
            && domain.split('.').all(|label| !label.is_empty() && label.chars().all(allowed));
        valid
            .then(|| text.to_lowercase())
            .ok_or_else(|| "must be an email address of at most 254 characters, like name@example.com".into())
    }
);

platform::checked_string!(
    /// A display name: 1 to 100 characters, no control characters.
    pub Name,
    schema: |s| s
        .pattern(Some(platform::newtype::DISPLAY_TEXT_PATTERN))
        .max_length(Some(100))
        .examples(["Ada Lovelace"]),
    |text| platform::newtype::display_text(text, 100)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("Ada@Example.COM").unwrap().as_str(),
            "ada@example.com"
        );
        // As the schema's pattern says: spaces are not part of an address, even around it.
        assert!(Email::parse(" ada@example.com").is_err());
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@.com",
            "a b@example.com",
            "a@b@example.com",
            "ada@example..com",
            "ada@example.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(Name::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(101)).is_err());
        assert!(Name::parse("Ada\u{0}").is_err());
    }
}
