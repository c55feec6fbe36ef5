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
    #[schema(value_type = String, format = "email")]
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

platform::checked_string!(
    /// An email address, trimmed and lower-cased, so that one address is one account.
    pub Email,
    |text| {
        let email = text.trim().to_lowercase();
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must be an email address like name@example.com".into());
        };
        let valid = email.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && email.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii());
        valid
            .then_some(email)
            .ok_or_else(|| "must be an email address of at most 254 characters, like name@example.com".into())
    }
);

platform::checked_string!(
    /// A display name: 1 to 100 characters, no control characters.
    pub Name,
    |text| {
        let name = text.trim();
        let valid = !name.is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control);
        valid
            .then(|| name.to_owned())
            .ok_or_else(|| "must be 1 to 100 characters without control characters".into())
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
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
