//! How text becomes terms, the same for messages and queries: words of letters and digits,
//! lower-cased and folded to ASCII where a letter has a base form ("Café" → "cafe"), and
//! each Chinese or Japanese character a term of its own (those scripts put no spaces
//! between words: a query word of several characters becomes a phrase of them, so "東京"
//! finds the two characters side by side).

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name the index's schema gives the analyzer.
pub const ANALYZER: &str = "chat";

/// Longer terms are dropped (a pasted hash or URL is not something people search for).
const MAX_TERM_BYTES: usize = 64;

pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(ChatTokenizer)
        .filter(RemoveLongFilter::limit(MAX_TERM_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Each term of `text` with its byte range in `text`.
pub fn terms(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        let token = stream.token();
        out.push((token.text.clone(), token.offset_from..token.offset_to));
    }
    out
}

/// Han ideographs, kana: scripts written without spaces between words.
fn stands_alone(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // Hiragana, Katakana
        | 0x3400..=0x4DBF     // CJK Extension A
        | 0x4E00..=0x9FFF     // CJK Unified Ideographs
        | 0xF900..=0xFAFF     // CJK Compatibility Ideographs
        | 0x20000..=0x2FFFF) // CJK Extensions B-F
}

fn in_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '\u{0300}'..='\u{036F}') // combining accents
}

#[derive(Clone, Copy, Default)]
pub struct ChatTokenizer;

pub struct ChatTokenStream<'a> {
    text: &'a str,
    at: usize,
    token: Token,
}

impl Tokenizer for ChatTokenizer {
    type TokenStream<'a> = ChatTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ChatTokenStream<'a> {
        ChatTokenStream { text, at: 0, token: Token::default() }
    }
}

impl TokenStream for ChatTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let rest = &self.text[self.at..];
        let Some((skip, first)) = rest.char_indices().find(|(_, c)| in_word(*c)) else {
            self.at = self.text.len();
            return false;
        };
        let start = self.at + skip;
        let end = if stands_alone(first) {
            start + first.len_utf8()
        } else {
            let word = &self.text[start..];
            start + word.char_indices().find(|(_, c)| !in_word(*c) || stands_alone(*c)).map_or(word.len(), |(i, _)| i)
        };
        self.token.offset_from = start;
        self.token.offset_to = end;
        self.token.position = self.token.position.wrapping_add(1);
        self.token.text.clear();
        self.token.text.push_str(&self.text[start..end]);
        self.at = end;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        terms(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn words_are_lower_cased_and_folded() {
        assert_eq!(words("Café au LAIT, s'il vous plaît!"), ["cafe", "au", "lait", "s", "il", "vous", "plait"]);
        assert_eq!(words("Grüße aus Köln"), ["grusse", "aus", "koln"]);
        assert_eq!(words("e-mail me at 10:30"), ["e", "mail", "me", "at", "10", "30"]);
    }

    #[test]
    fn chinese_and_japanese_characters_are_terms_of_their_own() {
        assert_eq!(words("東京タワーへ行く"), ["東", "京", "タ", "ワ", "ー", "へ", "行", "く"]);
        assert_eq!(words("meet在東京"), ["meet", "在", "東", "京"]);
        // Greek, Cyrillic, Korean keep their words (accents are folded for Latin letters only).
        assert_eq!(words("Καλημέρα Москва 안녕하세요"), ["καλημέρα", "москва", "안녕하세요"]);
    }

    #[test]
    fn offsets_point_into_the_original_text() {
        let text = "Größe: Ärger";
        for (term, range) in terms(text) {
            assert!(!text[range].is_empty(), "{term}");
        }
        assert_eq!(&text[terms(text)[1].1.clone()], "Ärger");
    }

    #[test]
    fn very_long_terms_are_dropped() {
        assert_eq!(words(&format!("see {}", "x".repeat(100))), ["see"]);
    }
}
