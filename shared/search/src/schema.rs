//! The index's fields. Nothing is stored: hits are read back from the Messages table as
//! they are now, and a hit's channel and id come from columns (fast fields). Only the text
//! has norms (BM25 weighs a match in a short message higher); the channel, author and
//! has-file terms are filters, and a message's id is a column, not a term of its own.

use tantivy::schema::{Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};

use crate::analyzer::ANALYZER;

#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub channel: Field,
    pub id: Field,
    pub version: Field,
    pub author: Field,
    pub text: Field,
    pub has_file: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        channel: builder.add_text_field("channel", keyword.clone().set_fast("raw")),
        id: builder.add_u64_field("id", NumericOptions::default().set_fast()),
        version: builder.add_u64_field("version", NumericOptions::default().set_fast()),
        author: builder.add_text_field("author", keyword),
        text: builder.add_text_field("text", text),
        has_file: builder.add_u64_field("hasFile", NumericOptions::default().set_indexed()),
    };
    (builder.build(), fields)
}
