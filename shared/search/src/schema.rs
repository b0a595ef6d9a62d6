//! The index's fields. The text is indexed, not stored: hits are read back from the
//! Messages table as they are now, which keeps the index at about a third of the text.

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};

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
    let fields = Fields {
        channel: builder.add_text_field("channel", STRING | STORED),
        id: builder.add_u64_field("id", INDEXED | STORED | FAST),
        version: builder.add_u64_field("version", FAST),
        author: builder.add_text_field("author", STRING),
        text: builder.add_text_field("text", text),
        has_file: builder.add_u64_field("hasFile", INDEXED),
    };
    (builder.build(), fields)
}
