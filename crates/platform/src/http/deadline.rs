//! A deadline for a request's handling whose timer is armed only when the handler has to
//! wait: a cached read is answered on its first poll and never touches the timer, where
//! `tokio::time::timeout` reads the clock and takes the runtime's handle up front (and its
//! future carries the timer's state, moved with it on every request).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tokio::time::Sleep;

pin_project_lite::pin_project! {
    /// `future`, or [`TimedOut`] once `deadline` passes.
    pub(super) struct Within<F> {
        #[pin]
        future: F,
        deadline: Instant,
        // Boxed: only a handler that waits pays for the timer's state.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

/// The deadline passed before the future finished.
#[derive(Debug)]
pub(super) struct TimedOut;

pub(super) fn within<F: Future>(deadline: Instant, future: F) -> Within<F> {
    Within {
        future,
        deadline,
        timer: None,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let deadline = *this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        timer.as_mut().poll(cx).map(|()| Err(TimedOut))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_ready_future_never_arms_the_timer() {
        let mut within = std::pin::pin!(within(Instant::now(), async { 7 }));
        let polled = std::future::poll_fn(|cx| Poll::Ready(within.as_mut().poll(cx))).await;
        assert!(matches!(polled, Poll::Ready(Ok(7))));
        assert!(within.timer.is_none());
    }

    #[tokio::test]
    async fn a_waiting_future_is_cut_off_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(30);
        let slow = within(deadline, tokio::time::sleep(Duration::from_secs(5)));
        assert!(slow.await.is_err());
        assert!(Instant::now() >= deadline);

        let deadline = Instant::now() + Duration::from_secs(5);
        let quick = within(deadline, async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            "done"
        });
        assert_eq!(quick.await.unwrap(), "done");
    }
}
