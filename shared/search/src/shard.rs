//! One shard of the index in this instance's memory, at one published version: its files
//! read once from the store and kept while the instance is warm, so that a new version
//! reads only the files it adds.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chat_domain::PortError;
use chat_domain::ports::{IndexFile, IndexFiles, IndexManifest};
use futures::{StreamExt, TryStreamExt};
use tantivy::directory::{Directory, RamDirectory};
use tantivy::index::SegmentComponent;
use tantivy::{Index, IndexReader, IndexSettings, ReloadPolicy};

use crate::analyzer::{ANALYZER, analyzer};
use crate::schema::{Fields, schema};

/// Files read from the store at once.
const READS_AT_ONCE: usize = 8;
/// tantivy's own description of the segments, the manifest's `meta`.
pub const META_FILE: &str = "meta.json";

pub struct Shard {
    pub number: u32,
    /// `None`: nothing published yet.
    pub version: Option<u64>,
    pub files: Vec<IndexFile>,
    pub directory: RamDirectory,
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
}

/// Nothing is stored in the documents, but the store still keeps an offset per document:
/// zstd shrinks those runs to almost nothing (lz4 leaves 4 bytes a message, ~5% of the text).
fn index_settings() -> IndexSettings {
    IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(Default::default()),
        ..IndexSettings::default()
    }
}

pub fn index_error(err: tantivy::TantivyError) -> PortError {
    PortError::Corrupt(Box::new(err))
}

impl Shard {
    /// The shard as `manifest` publishes it, reusing the files `previous` already holds.
    pub async fn load(
        store: &dyn IndexFiles,
        number: u32,
        manifest: Option<&IndexManifest>,
        previous: Option<&Shard>,
    ) -> Result<Shard, PortError> {
        let directory = RamDirectory::create();
        let (schema, fields) = schema();
        let index = match manifest {
            None => Index::create(directory.clone(), schema, index_settings()).map_err(index_error)?,
            Some(manifest) => {
                for (name, bytes) in read_files(store, number, manifest, previous).await? {
                    directory.atomic_write(Path::new(&name), &bytes).map_err(|e| PortError::Corrupt(Box::new(e)))?;
                }
                directory
                    .atomic_write(Path::new(META_FILE), manifest.meta.as_bytes())
                    .map_err(|e| PortError::Corrupt(Box::new(e)))?;
                Index::open(directory.clone()).map_err(index_error)?
            }
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(index_error)?;
        Ok(Shard {
            number,
            version: manifest.map(|m| m.version),
            files: manifest.map(|m| m.files.clone()).unwrap_or_default(),
            directory,
            index,
            reader,
            fields,
        })
    }

    /// Whether this version of the shard has the file `name`.
    pub fn has(&self, name: &str) -> bool {
        self.files.iter().any(|f| f.name == name)
    }

    /// The files the index's segments are made of now, and its `meta.json`.
    pub fn published_state(&self) -> Result<(Vec<String>, String), PortError> {
        let metas = self.index.load_metas().map_err(index_error)?;
        let mut files: Vec<String> = metas
            .segments
            .iter()
            .flat_map(|segment| {
                let mut parts = vec![
                    SegmentComponent::Postings,
                    SegmentComponent::Positions,
                    SegmentComponent::Terms,
                    SegmentComponent::Store,
                    SegmentComponent::FastFields,
                    SegmentComponent::FieldNorms,
                ];
                if segment.has_deletes() {
                    parts.push(SegmentComponent::Delete);
                }
                parts.into_iter().map(|part| segment.relative_path(part)).collect::<Vec<_>>()
            })
            .filter(|path| self.directory.exists(path).unwrap_or(false))
            .map(|path| path.to_string_lossy().into_owned())
            .collect();
        files.sort();
        files.dedup();
        let meta = self.directory.atomic_read(Path::new(META_FILE)).map_err(|e| PortError::Corrupt(Box::new(e)))?;
        let meta = String::from_utf8(meta).map_err(|e| PortError::Corrupt(Box::new(e)))?;
        Ok((files, meta))
    }

    /// Drops the files no longer part of the shard from memory.
    pub fn forget(&self, files: &[String]) {
        for file in files {
            let _ = self.directory.delete(Path::new(file));
        }
    }
}

/// The bytes of every file of `manifest`: those `previous` holds from memory, the rest
/// from their bundles (each bundle read once).
async fn read_files(
    store: &dyn IndexFiles,
    number: u32,
    manifest: &IndexManifest,
    previous: Option<&Shard>,
) -> Result<Vec<(String, Vec<u8>)>, PortError> {
    let mut files = Vec::with_capacity(manifest.files.len());
    let mut wanted: HashMap<String, Vec<IndexFile>> = HashMap::new();
    for file in &manifest.files {
        let kept =
            previous.filter(|p| p.has(&file.name)).and_then(|p| p.directory.atomic_read(Path::new(&file.name)).ok());
        match kept {
            Some(bytes) => files.push((file.name.clone(), bytes)),
            None => wanted.entry(file.bundle.clone()).or_default().push(file.clone()),
        }
    }
    let wanted: Vec<(String, Vec<IndexFile>)> = wanted.into_iter().collect();
    let reads = futures::stream::iter(wanted).map(|(bundle, parts)| async move {
        let bytes = store
            .read(number, &bundle)
            .await?
            .ok_or_else(|| PortError::Contended(format!("index shard {number} lost its bundle {bundle}")))?;
        parts
            .into_iter()
            .map(|part| {
                let range = part.offset as usize..(part.offset + part.len) as usize;
                let slice = bytes.get(range).ok_or_else(|| {
                    PortError::Corrupt(format!("bundle {bundle} is shorter than its file {}", part.name).into())
                })?;
                Ok((part.name, slice.to_vec()))
            })
            .collect::<Result<Vec<_>, PortError>>()
    });
    let read: Vec<Vec<(String, Vec<u8>)>> = reads.buffer_unordered(READS_AT_ONCE).try_collect().await?;
    files.extend(read.into_iter().flatten());
    Ok(files)
}

/// The shards this instance holds, each at the last version it read or wrote.
#[derive(Default)]
pub struct Shards {
    held: tokio::sync::Mutex<HashMap<u32, Arc<Shard>>>,
}

impl Shards {
    /// `number` at `manifest`'s version: the one held when it is that version, else loaded.
    pub async fn at(
        &self,
        store: &dyn IndexFiles,
        number: u32,
        manifest: Option<&IndexManifest>,
    ) -> Result<Arc<Shard>, PortError> {
        let previous = self.held.lock().await.get(&number).cloned();
        if let Some(shard) = &previous
            && shard.version == manifest.map(|m| m.version)
        {
            return Ok(shard.clone());
        }
        let shard = Arc::new(Shard::load(store, number, manifest, previous.as_deref()).await?);
        self.keep(shard.clone()).await;
        Ok(shard)
    }

    /// Keeps `shard` unless a newer version of it is held.
    pub async fn keep(&self, shard: Arc<Shard>) {
        let mut held = self.held.lock().await;
        let newer = held.get(&shard.number).is_some_and(|h| h.version > shard.version);
        if !newer {
            held.insert(shard.number, shard);
        }
    }

    pub async fn drop_shard(&self, number: u32) {
        self.held.lock().await.remove(&number);
    }
}
