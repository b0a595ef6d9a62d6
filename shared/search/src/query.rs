//! A query's text as clauses, every one of which a message must match: a word, a "quoted
//! phrase", and the last word as a prefix while it is being typed ("hel" finds "hello").
//! The same clauses make the index query and find the words to highlight.

use std::ops::Range;

use tantivy::Term;
use tantivy::query::{BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};

use crate::analyzer::terms;

/// Terms a prefix may stand for in one shard (the work a query does stays bounded).
const MAX_PREFIX_EXPANSIONS: u32 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// One term, or several side by side.
    Words(Vec<String>),
    /// Side by side, the last one only a prefix.
    Prefix(Vec<String>),
}

impl Clause {
    fn parts(&self) -> (&[String], bool) {
        match self {
            Clause::Words(words) => (words, false),
            Clause::Prefix(words) => (words, true),
        }
    }
}

/// The clauses of `q`. Words of a script without spaces (several terms from one word) are
/// phrases; the last word is a prefix unless the query ends with a space or a quote.
pub fn parse(q: &str) -> Vec<Clause> {
    let mut clauses = Vec::new();
    let mut rest = q;
    let mut last_was_bare = false;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (segment, quoted, after) = if let Some(inner) = rest.strip_prefix('"') {
            let end = inner.find('"').unwrap_or(inner.len());
            (&inner[..end], true, inner.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
            (&rest[..end], false, &rest[end..])
        };
        let words: Vec<String> = terms(segment).into_iter().map(|(t, _)| t).collect();
        if !words.is_empty() {
            clauses.push(Clause::Words(words));
            last_was_bare = !quoted;
        }
        rest = after;
    }
    let typing_last_word = !q.ends_with(char::is_whitespace) && !q.ends_with('"');
    if last_was_bare
        && typing_last_word
        && let Some(Clause::Words(words)) = clauses.pop()
    {
        clauses.push(Clause::Prefix(words));
    }
    clauses
}

/// The index query of `clauses` over the text field.
pub fn text_query(field: Field, clauses: &[Clause]) -> Box<dyn Query> {
    let term = |t: &String| Term::from_field_text(field, t);
    let parts = clauses
        .iter()
        .map(|clause| {
            let query: Box<dyn Query> = match clause {
                Clause::Words(words) if words.len() == 1 => {
                    Box::new(TermQuery::new(term(&words[0]), IndexRecordOption::WithFreqs))
                }
                Clause::Words(words) => Box::new(PhraseQuery::new(words.iter().map(term).collect())),
                Clause::Prefix(words) => {
                    let mut query = PhrasePrefixQuery::new(words.iter().map(term).collect());
                    query.set_max_expansions(MAX_PREFIX_EXPANSIONS);
                    Box::new(query)
                }
            };
            (Occur::Must, query)
        })
        .collect();
    Box::new(BooleanQuery::new(parts))
}

/// Where in `text` each clause matches (byte ranges, sorted, merged); `None` unless every
/// clause matches somewhere.
pub fn matches(clauses: &[Clause], text: &str) -> Option<Vec<Range<usize>>> {
    if clauses.is_empty() {
        return None;
    }
    let tokens = terms(text);
    let mut ranges = Vec::new();
    for clause in clauses {
        let (words, prefix) = clause.parts();
        let n = words.len();
        let before = ranges.len();
        for start in 0..tokens.len().saturating_sub(n - 1) {
            let fits = (0..n).all(|k| {
                let token = &tokens[start + k].0;
                if prefix && k == n - 1 { token.starts_with(words[k].as_str()) } else { *token == words[k] }
            });
            if fits {
                ranges.push(tokens[start].1.start..tokens[start + n - 1].1.end);
            }
        }
        if ranges.len() == before {
            return None;
        }
    }
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn words_phrases_and_the_last_word_as_a_prefix() {
        assert_eq!(
            parse("Lunch \"big Meeting\" tomo"),
            [
                Clause::Words(words(&["lunch"])),
                Clause::Words(words(&["big", "meeting"])),
                Clause::Prefix(words(&["tomo"]))
            ]
        );
        assert_eq!(parse("lunch "), [Clause::Words(words(&["lunch"]))]);
        assert_eq!(parse("\"big meeting\""), [Clause::Words(words(&["big", "meeting"]))]);
        assert_eq!(parse("\"unclosed phrase"), [Clause::Words(words(&["unclosed", "phrase"]))]);
        assert_eq!(parse("東京"), [Clause::Prefix(words(&["東", "京"]))]);
        assert!(parse(" !? ").is_empty());
    }

    #[test]
    fn every_clause_must_match_and_matches_are_highlighted() {
        let text = "The big meeting is tomorrow, not the big party";
        let clauses = parse("\"big meeting\" tomo");
        let ranges = matches(&clauses, text).unwrap();
        let found: Vec<&str> = ranges.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(found, ["big meeting", "tomorrow"]);
        assert!(matches(&parse("\"meeting big\""), text).is_none());
        assert!(matches(&parse("party cake"), text).is_none());
        let found = matches(&parse("CAFE"), "Un café?").unwrap();
        assert_eq!((found.len(), found[0].start, found[0].end), (1, 3, 8));
    }
}
