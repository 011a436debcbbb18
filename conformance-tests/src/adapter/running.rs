//! A server under test, running on its own thread until dropped.

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a server made by [`Running::spawn`] has to return once its
/// [`Shutdown`] has completed, unless [`Running::with_stop_timeout`] says
/// otherwise.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A server the suite drives: its address, and what stops it. Dropping it
/// stops the server and waits for its thread to end.
///
/// Make one with [`Running::spawn`] (the usual way), or with
/// [`Running::new`] when the framework binds its own socket.
pub struct Running {
    addr: SocketAddr,
    stop: Option<Box<dyn FnOnce(Duration) + Send>>,
    stop_timeout: Duration,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// A running server at `addr`; `stop` is called once when this value is
    /// dropped, and should return only when the server has stopped.
    #[must_use]
    pub fn new(addr: SocketAddr, stop: impl FnOnce() + Send + 'static) -> Self {
        Self::stopped_by(addr, move |_| stop())
    }

    fn stopped_by(addr: SocketAddr, stop: impl FnOnce(Duration) + Send + 'static) -> Self {
        Self {
            addr,
            stop: Some(Box::new(stop)),
            stop_timeout: STOP_TIMEOUT,
        }
    }

    /// How long, once dropped, a server made by [`spawn`](Self::spawn) has
    /// to return ([`STOP_TIMEOUT`] by default). A [`Running::new`] waits as
    /// long as its own `stop` does.
    #[must_use]
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Binds `127.0.0.1` on a free port, then runs `serve` on a new thread
    /// with the listener and a [`Shutdown`] future that completes when the
    /// returned `Running` is dropped. `serve` builds its own runtime, serves
    /// until `Shutdown` completes, and returns.
    ///
    /// Dropping the `Running` waits for `serve` to return, for at most
    /// [`STOP_TIMEOUT`] (see [`with_stop_timeout`](Self::with_stop_timeout)); a server still running then fails the case with a
    /// panic that says so (a graceful shutdown that waits for the client's
    /// idle keep-alive connections is the usual cause), instead of hanging
    /// the suite. When the case is already failing, the thread is left
    /// behind and the first failure stands.
    ///
    /// ```
    /// use conformance_tests::adapter::Running;
    ///
    /// let running = Running::spawn(|listener, shutdown| {
    ///     // A real harness builds its runtime here and serves `listener`
    ///     // with its framework until `shutdown` completes.
    ///     let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    ///     runtime.block_on(shutdown);
    ///     drop(listener);
    /// })
    /// .unwrap();
    /// assert!(running.addr().ip().is_loopback());
    /// drop(running); // completes `shutdown` and joins the thread
    /// ```
    ///
    /// # Errors
    ///
    /// When the port cannot be bound or the thread cannot be spawned.
    pub fn spawn<F>(serve: F) -> std::io::Result<Self>
    where
        F: FnOnce(TcpListener, Shutdown) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let signal = Arc::new(Mutex::new(Signal::default()));
        let shutdown = Shutdown {
            signal: signal.clone(),
        };
        let (done, returned) = mpsc::channel::<()>();
        let thread: JoinHandle<()> = std::thread::Builder::new()
            .name(format!("server-{addr}"))
            .spawn(move || {
                serve(listener, shutdown);
                let _ = done.send(());
            })?;
        Ok(Self::stopped_by(addr, move |timeout| {
            let waker = {
                let mut signal = signal.lock().unwrap_or_else(PoisonError::into_inner);
                signal.stopped = true;
                signal.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
            match returned.recv_timeout(timeout) {
                // Returned, or panicked (the sender dropped unsent): a
                // panic has already failed the case.
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = thread.join();
                }
                Err(RecvTimeoutError::Timeout) if std::thread::panicking() => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "the server at {addr} did not stop within {timeout:?} of its \
                     Shutdown future completing: `serve` must return once Shutdown \
                     completes (does its graceful shutdown wait for idle keep-alive \
                     connections?)"
                ),
            }
        }))
    }

    /// Where the server listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop(self.stop_timeout);
        }
    }
}

#[derive(Default)]
struct Signal {
    stopped: bool,
    waker: Option<Waker>,
}

/// A future that completes when the [`Running`] made by [`Running::spawn`]
/// is dropped. It works on any async runtime: pass it to the framework's
/// graceful shutdown, or race the server against it.
pub struct Shutdown {
    signal: Arc<Mutex<Signal>>,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown").finish_non_exhaustive()
    }
}

impl Future for Shutdown {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut signal = self.signal.lock().unwrap_or_else(PoisonError::into_inner);
        if signal.stopped {
            Poll::Ready(())
        } else {
            signal.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on(future: impl Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future);
    }

    #[test]
    fn dropping_it_completes_shutdown_and_waits_for_the_server() {
        let stopped = Arc::new(Mutex::new(false));
        let running = Running::spawn({
            let stopped = stopped.clone();
            move |_listener, shutdown| {
                block_on(shutdown);
                *stopped.lock().unwrap() = true;
            }
        })
        .unwrap();
        drop(running);
        assert!(*stopped.lock().unwrap(), "drop returned before serve did");
    }

    #[test]
    fn a_server_that_does_not_stop_fails_instead_of_hanging() {
        let (release, held) = mpsc::channel::<()>();
        let running = Running::spawn(move |_listener, shutdown| {
            block_on(shutdown);
            // Ignores the shutdown, as a graceful shutdown waiting for an
            // idle connection would.
            let _ = held.recv();
        })
        .unwrap()
        .with_stop_timeout(Duration::from_millis(50));
        // Dropped on a thread of its own, so that a drop that waits forever
        // fails this test instead of hanging it.
        let (outcome, dropped) = mpsc::channel();
        std::thread::spawn(move || {
            let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(running)));
            let _ = outcome.send(failure.err().and_then(|e| e.downcast::<String>().ok()));
        });
        let message = dropped
            .recv_timeout(Duration::from_secs(5))
            .expect("dropping a server that does not stop must not hang")
            .expect("a server that did not stop must fail the case");
        assert!(message.contains("did not stop within 50ms"), "{message}");
        release.send(()).unwrap();
    }
}
