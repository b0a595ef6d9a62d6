//! SDK clients built on first use. Building a client is what loads the TLS roots and sets up
//! its connector (milliseconds of a cold start); a function pays for the clients its
//! requests use, when the first one does, not for every client at start.

use std::sync::{Arc, OnceLock};

pub struct LazyClient<C> {
    cell: OnceLock<C>,
    build: Box<dyn Fn() -> C + Send + Sync>,
}

impl<C> LazyClient<C> {
    pub fn new(build: impl Fn() -> C + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self { cell: OnceLock::new(), build: Box::new(build) })
    }

    /// The client, built now if this is its first use.
    pub fn get(&self) -> &C {
        self.cell.get_or_init(|| (self.build)())
    }

    /// Whether anything has used the client yet.
    pub fn is_built(&self) -> bool {
        self.cell.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_client_is_built_once_and_only_when_used() {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = built.clone();
        let lazy = LazyClient::new(move || counter.fetch_add(1, Ordering::SeqCst));
        assert!(!lazy.is_built());
        assert_eq!(built.load(Ordering::SeqCst), 0);
        assert_eq!(*lazy.get(), 0);
        assert_eq!(*lazy.get(), 0);
        assert_eq!(built.load(Ordering::SeqCst), 1);
        assert!(lazy.is_built());
    }
}
