//! The part of a message to show beside a hit: the whole text when short, else a window
//! around the first match, in fragments with the matched words marked.

use std::ops::Range;

use chat_domain::search::SnippetFragment;

/// Longest snippet, in characters (plus an ellipsis at a cut end).
pub const SNIPPET_CHARS: usize = 200;
/// Characters shown before the first match when the text is cut.
const LEAD_CHARS: usize = 50;

pub fn fragments(text: &str, matches: &[Range<usize>]) -> Vec<SnippetFragment> {
    let (start, end) = window(text, matches.first().map_or(0, |m| m.start));
    let mut out = Vec::new();
    let mut push = |text: &str, highlighted: bool| {
        if !text.is_empty() {
            out.push(SnippetFragment { text: text.to_owned(), highlighted });
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for m in matches {
        let (from, to) = (m.start.max(at), m.end.min(end));
        if from >= to {
            continue;
        }
        push(&text[at..from], false);
        push(&text[from..to], true);
        at = to;
    }
    push(&text[at..end], false);
    if end < text.len() {
        push("…", false);
    }
    out
}

/// Byte bounds of at most [`SNIPPET_CHARS`] characters of `text` showing the byte `first`.
fn window(text: &str, first: usize) -> (usize, usize) {
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let chars = boundaries.len() - 1;
    if chars <= SNIPPET_CHARS {
        return (0, text.len());
    }
    let first_char = boundaries.partition_point(|&b| b < first);
    let start_char = first_char.saturating_sub(LEAD_CHARS).min(chars - SNIPPET_CHARS);
    (boundaries[start_char], boundaries[start_char + SNIPPET_CHARS])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(fragments: &[SnippetFragment]) -> String {
        fragments.iter().map(|f| if f.highlighted { format!("[{}]", f.text) } else { f.text.clone() }).collect()
    }

    #[test]
    fn short_texts_are_shown_whole() {
        assert_eq!(render(&fragments("see you at lunch", &[Range { start: 11, end: 16 }])), "see you at [lunch]");
    }

    #[test]
    fn long_texts_are_cut_around_the_first_match() {
        let text = format!("{} needle {}", "á".repeat(300), "b".repeat(300));
        let at = text.find("needle").unwrap();
        let shown = render(&fragments(&text, &[Range { start: at, end: at + 6 }]));
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.contains("[needle]"));
        assert_eq!(shown.chars().count(), SNIPPET_CHARS + 2 + 2);
    }
}
