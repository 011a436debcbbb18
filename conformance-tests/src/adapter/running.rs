//! A server under test, running on its own thread until dropped.

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

/// A server the suite drives: its address, and what stops it. Dropping it
/// stops the server and waits for its thread to end.
///
/// Make one with [`Running::spawn`] (the usual way), or with
/// [`Running::new`] when the framework binds its own socket.
pub struct Running {
    addr: SocketAddr,
    stop: Option<Box<dyn FnOnce() + Send>>,
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
        Self {
            addr,
            stop: Some(Box::new(stop)),
        }
    }

    /// Binds `127.0.0.1` on a free port, then runs `serve` on a new thread
    /// with the listener and a [`Shutdown`] future that completes when the
    /// returned `Running` is dropped. `serve` builds its own runtime, serves
    /// until `Shutdown` completes, and returns.
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
        let thread: JoinHandle<()> = std::thread::Builder::new()
            .name(format!("server-{addr}"))
            .spawn(move || serve(listener, shutdown))?;
        Ok(Self::new(addr, move || {
            let waker = {
                let mut signal = signal.lock().unwrap_or_else(PoisonError::into_inner);
                signal.stopped = true;
                signal.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
            // A server thread that panicked has already failed the case.
            let _ = thread.join();
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
            stop();
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
