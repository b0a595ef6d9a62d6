//! The open WebSocket connections, by connection id.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::events::ConnectionContext;

/// What the socket's task is told to write.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Binary(Vec<u8>),
    Close { code: u16, reason: &'static str },
}

/// One open WebSocket, as the registry and the socket's task share it. Kept small: a
/// gateway holds thousands of idle ones (docs/BENCHMARKS.md, "Gateway memory per idle
/// socket"), so nothing here is allocated before it is needed.
pub struct Connection {
    pub context: ConnectionContext,
    /// The authorizer's context plus `principalId`, sent with every route's event: kept as
    /// its JSON text (a parsed map costs several times as much, per socket).
    authorizer: Box<str>,
    last_active_ms: AtomicI64,
    /// What is queued for the client, and the socket task's waker while it waits for more.
    outbox: Mutex<Outbox>,
}

#[derive(Default)]
struct Outbox {
    /// Allocated only while something waits to be written.
    queue: VecDeque<Outbound>,
    waker: Option<Waker>,
    /// The socket stopped writing (a close frame went out, or the socket failed): what is
    /// sent now is refused, as to a gone connection.
    stopped: bool,
}

/// A post to a socket that no longer writes.
#[derive(Debug)]
pub struct Stopped;

impl Connection {
    pub fn new(context: ConnectionContext, authorizer: &serde_json::Value, now_ms: i64) -> Self {
        Self {
            context,
            authorizer: authorizer.to_string().into_boxed_str(),
            last_active_ms: AtomicI64::new(now_ms),
            outbox: Mutex::default(),
        }
    }

    /// The authorizer's context plus `principalId`.
    pub fn authorizer(&self) -> serde_json::Value {
        serde_json::from_str(&self.authorizer).expect("the authorizer's context was JSON")
    }

    pub fn touch(&self, now_ms: i64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Queues `out` for the client (in order); refused once the socket stopped writing.
    pub fn send(&self, out: Outbound) -> Result<(), Stopped> {
        let mut outbox = self.lock();
        if outbox.stopped {
            return Err(Stopped);
        }
        outbox.queue.push_back(out);
        if let Some(waker) = outbox.waker.take() {
            drop(outbox);
            waker.wake();
        }
        Ok(())
    }

    /// Whether something waits to be written; when nothing does, `cx` is woken by the next
    /// [`Connection::send`].
    pub(crate) fn poll_pending(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut outbox = self.lock();
        if outbox.stopped {
            return Poll::Pending;
        }
        if !outbox.queue.is_empty() {
            return Poll::Ready(());
        }
        match &mut outbox.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next thing to write; a close frame stops the writing (what follows it is dropped,
    /// and later sends are refused). An emptied queue gives its memory back.
    pub(crate) fn next_outbound(&self) -> Option<Outbound> {
        let mut outbox = self.lock();
        if outbox.stopped {
            return None;
        }
        let out = outbox.queue.pop_front()?;
        if matches!(out, Outbound::Close { .. }) {
            outbox.stop();
        } else if outbox.queue.is_empty() {
            outbox.queue = VecDeque::new();
        }
        Some(out)
    }

    /// The socket stopped writing (it failed): nothing more is queued.
    pub(crate) fn stop_writing(&self) {
        self.lock().stop();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().expect("outbox lock")
    }
}

impl Outbox {
    fn stop(&mut self) {
        self.stopped = true;
        self.queue = VecDeque::new();
        self.waker = None;
    }
}

#[derive(Default, Clone)]
pub struct Registry {
    open: Arc<Mutex<HashMap<String, Arc<Connection>>>>,
    /// Closed sockets whose `$disconnect` has not returned yet.
    closing: Arc<std::sync::atomic::AtomicUsize>,
}

/// A closed socket until its `$disconnect` returns (dropped then).
pub struct Closing(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Registry {
    pub fn insert(&self, connection: Arc<Connection>) {
        self.lock().insert(connection.context.connection_id.clone(), connection);
    }

    pub fn get(&self, connection_id: &str) -> Option<Arc<Connection>> {
        self.lock().get(connection_id).cloned()
    }

    pub fn remove(&self, connection_id: &str) -> Option<Arc<Connection>> {
        self.lock().remove(connection_id)
    }

    /// Forgets a closed socket; it counts as closing until the answer is dropped.
    pub fn close(&self, connection_id: &str) -> Closing {
        self.closing.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.remove(connection_id);
        Closing(self.closing.clone())
    }

    /// Sockets closed whose `$disconnect` is still running.
    pub fn closing(&self) -> usize {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        self.open.lock().expect("registry lock")
    }
}

/// A new id in AWS's shape: 10 random bytes, base64 (`L0SM9cOFvHcCIhw=`), so ids with
/// `/`, `+` and `=` exercise the clients' percent-encoding as real ones do.
pub fn new_connection_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 10] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
