//! The open WebSocket connections, by connection id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::events::ConnectionContext;

/// What the socket's writer task is told to do.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Binary(Vec<u8>),
    Close { code: u16, reason: &'static str },
}

pub struct Connection {
    pub context: ConnectionContext,
    /// The authorizer's context plus `principalId`: sent with every route's event.
    pub authorizer: serde_json::Value,
    pub last_active_ms: AtomicI64,
    pub outbound: mpsc::UnboundedSender<Outbound>,
}

impl Connection {
    pub fn touch(&self, now_ms: i64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
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
