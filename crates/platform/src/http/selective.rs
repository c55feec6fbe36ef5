//! Middleware that concerns only some requests, and costs the others nothing: no boxed
//! future, no clone of the stack inside it. axum's `from_fn` pays both on every request,
//! which on a cached read is a good part of its time.

use std::{
    convert::Infallible,
    future::Future,
    task::{Context, Poll},
};

use axum::{extract::Request, response::Response};
use futures_util::future::{BoxFuture, Either};
use tower::{Layer, Service};

/// What a [`SelectiveLayer`] does around the requests it concerns.
pub trait Selective: Clone + Send + Sync + 'static {
    /// What [`Selective::around`] needs to know of the request; `None` lets the request
    /// straight through.
    type Plan: Send + 'static;

    fn plan(&self, request: &Request) -> Option<Self::Plan>;

    /// Handles a request that has a plan; `next` is the rest of the stack.
    fn around<S>(
        self,
        plan: Self::Plan,
        request: Request,
        next: S,
    ) -> impl Future<Output = Response> + Send
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static;
}

/// A middleware that may be switched off: `None` lets every request through.
impl<M: Selective> Selective for Option<M> {
    type Plan = M::Plan;

    fn plan(&self, request: &Request) -> Option<Self::Plan> {
        self.as_ref()?.plan(request)
    }

    async fn around<S>(self, plan: Self::Plan, request: Request, next: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        match self {
            Some(middleware) => middleware.around(plan, request, next).await,
            None => call_next(next, request).await,
        }
    }
}

/// Runs the rest of the stack (which cannot fail: axum's errors are responses).
pub async fn call_next<S>(mut next: S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match next.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Wraps each route in a [`Selective`] middleware.
#[derive(Clone, Debug)]
pub struct SelectiveLayer<M>(pub M);

impl<M: Clone, S> Layer<S> for SelectiveLayer<M> {
    type Service = SelectiveService<M, S>;

    fn layer(&self, inner: S) -> Self::Service {
        SelectiveService {
            middleware: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SelectiveService<M, S> {
    middleware: M,
    inner: S,
}

impl<M, S> Service<Request> for SelectiveService<M, S>
where
    M: Selective,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(plan) = self.middleware.plan(&request) else {
            return Either::Left(self.inner.call(request));
        };
        // The ready service goes into the future; a clone stays for the next request.
        let clone = self.inner.clone();
        let next = std::mem::replace(&mut self.inner, clone);
        let middleware = self.middleware.clone();
        Either::Right(Box::pin(async move {
            Ok(middleware.around(plan, request, next).await)
        }))
    }
}
