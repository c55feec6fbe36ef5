//! Routes declared with their policy: which rate-limit quota a route's requests spend and
//! which feature switch can turn it off. A module lists its routes here; the application
//! puts the middleware each policy asks for on each route, so the router is the one list of
//! both and renaming a path cannot move it to another quota.

use axum::{
    Router,
    handler::Handler,
    http::Method,
    routing::{self, MethodRouter},
};

/// The rate-limit class of a route: which quota its requests spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "lowercase")]
pub enum RateClass {
    /// Logging in and registering: strict, and always spent from the client address's budget
    /// (a session must not pay for guessing credentials).
    Login,
    Write,
    Read,
}

impl RateClass {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A part of the API an operator can switch off at runtime, so that under load the core of
/// the service keeps the capacity it would take.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Feature {
    /// Its name in the admin API.
    pub name: &'static str,
}

/// What a route asks of the middleware in front of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The quota its requests spend; `None` for routes never limited (health, metrics).
    pub rate: Option<RateClass>,
    /// The switch that can turn it off, if any.
    pub feature: Option<&'static Feature>,
}

impl Policy {
    pub const LOGIN: Self = Self::spending(RateClass::Login);
    pub const WRITE: Self = Self::spending(RateClass::Write);
    pub const READ: Self = Self::spending(RateClass::Read);
    /// Health checks and metrics: an orchestrator or a scraper must always get through.
    pub const UNLIMITED: Self = Self {
        rate: None,
        feature: None,
    };

    const fn spending(class: RateClass) -> Self {
        Self {
            rate: Some(class),
            feature: None,
        }
    }

    /// The same policy, and `feature` switched off turns the route off.
    pub const fn switched_by(self, feature: &'static Feature) -> Self {
        Self {
            feature: Some(feature),
            ..self
        }
    }
}

/// One route: a method on a path, its handler and its policy.
#[derive(Debug)]
struct Declared<S> {
    method: Method,
    path: &'static str,
    handler: MethodRouter<S>,
    policy: Policy,
}

/// A list of routes with their policies, turned into a router by [`Routes::into_router`].
#[derive(Debug)]
pub struct Routes<S>(Vec<Declared<S>>);

impl<S> Default for Routes<S> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

macro_rules! methods {
    ($($method:ident => $constant:ident),*) => {
        $(
            pub fn $method<H, T>(self, path: &'static str, handler: H, policy: Policy) -> Self
            where
                H: Handler<T, S>,
                T: 'static,
            {
                self.declare(Method::$constant, path, routing::$method(handler), policy)
            }
        )*
    };
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    methods!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

    fn declare(
        mut self,
        method: Method,
        path: &'static str,
        handler: MethodRouter<S>,
        policy: Policy,
    ) -> Self {
        self.0.push(Declared {
            method,
            path,
            handler,
            policy,
        });
        self
    }

    pub fn merge(mut self, other: Self) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Every route's method, path and policy, in the order declared.
    pub fn policies(&self) -> impl Iterator<Item = (&Method, &'static str, Policy)> {
        self.0.iter().map(|r| (&r.method, r.path, r.policy))
    }

    /// The feature switches the routes name, each once.
    pub fn features(&self) -> Vec<&'static Feature> {
        let mut features: Vec<&'static Feature> = Vec::new();
        for feature in self.0.iter().filter_map(|r| r.policy.feature) {
            if !features.contains(&feature) {
                features.push(feature);
            }
        }
        features
    }

    /// The router, each route's handler wrapped by what `guard` makes of its policy.
    pub fn into_router(
        self,
        mut guard: impl FnMut(Policy, MethodRouter<S>) -> MethodRouter<S>,
    ) -> Router<S> {
        self.0.into_iter().fold(Router::new(), |router, route| {
            router.route(route.path, guard(route.policy, route.handler))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static LISTING: Feature = Feature { name: "listing" };

    #[test]
    fn routes_keep_their_policies_and_name_each_feature_once() {
        let routes: Routes<()> = Routes::new()
            .get("/things", || async {}, Policy::READ.switched_by(&LISTING))
            .post("/things", || async {}, Policy::WRITE)
            .merge(Routes::new().get(
                "/things/{id}",
                || async {},
                Policy::READ.switched_by(&LISTING),
            ));
        let policies: Vec<_> = routes
            .policies()
            .map(|(method, path, policy)| (method.clone(), path, policy.rate))
            .collect();
        assert_eq!(
            policies,
            [
                (Method::GET, "/things", Some(RateClass::Read)),
                (Method::POST, "/things", Some(RateClass::Write)),
                (Method::GET, "/things/{id}", Some(RateClass::Read)),
            ]
        );
        assert_eq!(routes.features(), [&LISTING]);
        // Two methods on one path become one route with both.
        let mut guarded = 0;
        let _router = routes.into_router(|_, handler| {
            guarded += 1;
            handler
        });
        assert_eq!(guarded, 3);
    }
}
