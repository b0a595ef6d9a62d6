//! `GET /search`: full-text search over the messages of the caller's channels.

use serde::{Deserialize, Serialize};

use crate::model::Message;

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SearchOrder {
    /// Newest message first.
    #[default]
    Newest,
    /// Best match first (BM25), newest first among equals.
    Relevance,
}

/// A page of search hits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// Pass as `cursor` (with the same query) for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One message that matches, as history shows it now, with the part of its text that
/// matched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub message: Message,
    /// The text around the first match, in pieces: concatenated they are the snippet, and
    /// the pieces with `highlighted` are the words that matched. Clients render text, not
    /// markup.
    pub snippet: Vec<SnippetFragment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnippetFragment {
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub highlighted: bool,
}

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words (and phrase words) in one query: each is a term lookup in every shard read.
pub const MAX_QUERY_TERMS: usize = 16;
pub const DEFAULT_SEARCH_LIMIT: usize = 20;
pub const MAX_SEARCH_LIMIT: usize = 50;
/// How deep relevance paging goes (as search engines bound it): 10 pages of 50.
pub const MAX_SEARCH_OFFSET: usize = 500;
