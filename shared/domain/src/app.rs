//! The application as the rules see it: settings, a clock, and the ports. Built once per
//! cold start by the function's `main` (through `chat_aws::wire`), or in memory by tests.

use std::sync::Arc;

use crate::clock::Clock;
use crate::error::PortError;
use crate::ports::{
    BlockStore, CallStore, ChannelStore, IndexFiles, InvitationStore, MediaStore, MessageLog, Poster, PresenceStore,
    PushService, RateCounter, ReactionStore, SearchIndex, SessionStore, SubscriptionStore, Tokens, UserStore,
};
use crate::settings::Settings;

/// Every port the rules use. A function's wiring gives each the adapter it needs.
#[derive(Clone)]
pub struct Ports {
    pub channels: Arc<dyn ChannelStore>,
    pub messages: Arc<dyn MessageLog>,
    pub reactions: Arc<dyn ReactionStore>,
    pub presence: Arc<dyn PresenceStore>,
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub calls: Arc<dyn CallStore>,
    pub invitations: Arc<dyn InvitationStore>,
    pub blocks: Arc<dyn BlockStore>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub counters: Arc<dyn RateCounter>,
    pub poster: Arc<dyn Poster>,
    pub push: Arc<dyn PushService>,
    pub media: Arc<dyn MediaStore>,
    /// Only the functions that sign or check tokens have them (`TOKEN_SECRET`).
    pub tokens: Option<Arc<dyn Tokens>>,
    /// Where the full-text index lives, in the functions given its bucket (`SEARCH_BUCKET`).
    pub index_files: Option<Arc<dyn IndexFiles>>,
    /// The index itself, over `index_files`: only the search and indexer functions link
    /// the index library and set it (`chat_search::open`).
    pub search: Option<Arc<dyn SearchIndex>>,
}

#[derive(Clone)]
pub struct App {
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub ports: Ports,
}

impl App {
    pub fn new(settings: Settings, clock: Arc<dyn Clock>, ports: Ports) -> Self {
        Self { settings, clock, ports }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn channels(&self) -> &dyn ChannelStore {
        &*self.ports.channels
    }

    pub fn messages(&self) -> &dyn MessageLog {
        &*self.ports.messages
    }

    pub fn reactions(&self) -> &dyn ReactionStore {
        &*self.ports.reactions
    }

    pub fn presence(&self) -> &dyn PresenceStore {
        &*self.ports.presence
    }

    pub fn subscriptions(&self) -> &dyn SubscriptionStore {
        &*self.ports.subscriptions
    }

    pub fn calls(&self) -> &dyn CallStore {
        &*self.ports.calls
    }

    pub fn invitations(&self) -> &dyn InvitationStore {
        &*self.ports.invitations
    }

    pub fn blocks(&self) -> &dyn BlockStore {
        &*self.ports.blocks
    }

    pub fn users(&self) -> &dyn UserStore {
        &*self.ports.users
    }

    pub fn sessions(&self) -> &dyn SessionStore {
        &*self.ports.sessions
    }

    pub fn counters(&self) -> &dyn RateCounter {
        &*self.ports.counters
    }

    pub fn poster(&self) -> &dyn Poster {
        &*self.ports.poster
    }

    pub fn push(&self) -> &dyn PushService {
        &*self.ports.push
    }

    pub fn media(&self) -> &dyn MediaStore {
        &*self.ports.media
    }

    /// The token keys, in the functions that are given the signing secret.
    pub fn tokens(&self) -> Result<&dyn Tokens, PortError> {
        self.ports.tokens.as_deref().ok_or(PortError::Unconfigured("TOKEN_SECRET"))
    }

    /// The full-text index, in the functions that search or feed it.
    pub fn search(&self) -> Result<&dyn SearchIndex, PortError> {
        self.ports.search.as_deref().ok_or(PortError::Unconfigured("search index"))
    }
}
