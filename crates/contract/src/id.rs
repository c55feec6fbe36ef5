//! Ids as types: an order's id cannot be passed where a user's is expected. Each is a
//! `bigint` in PostgreSQL and an integer in JSON (`#[schema(value_type = i64)]` where the API
//! document shows one).

use std::{error::Error, fmt};

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

macro_rules! id {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                platform::newtype::whole_number(deserializer).map(Self)
            }
        }

        impl $name {
            pub const fn new(id: i64) -> Self {
                Self(id)
            }

            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ToSql for $name {
            fn to_sql(
                &self,
                ty: &Type,
                out: &mut bytes::BytesMut,
            ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                self.0.to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <i64 as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
                i64::from_sql(ty, raw).map(Self)
            }

            fn accepts(ty: &Type) -> bool {
                <i64 as FromSql>::accepts(ty)
            }
        }
    };
}

id!(
    /// A user's (a customer's or an admin's) id.
    UserId
);
id!(
    /// A product's id.
    ProductId
);
id!(
    /// An order's id.
    OrderId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_plain_integer_in_json() {
        let id = OrderId::new(42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<OrderId>("42").unwrap(), id);
        assert!(serde_json::from_str::<OrderId>("\"42\"").is_err());
        assert_eq!(id.to_string(), "42");
    }
}
