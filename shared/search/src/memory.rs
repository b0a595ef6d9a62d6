//! [`IndexFiles`] in this process's memory: unit tests, and the bench's corpus runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chat_domain::PortError;
use chat_domain::ports::{IndexFiles, IndexManifest};

#[derive(Default)]
pub struct MemoryIndexFiles {
    manifests: Mutex<HashMap<u32, IndexManifest>>,
    files: Mutex<BTreeMap<(u32, String), Vec<u8>>>,
}

impl MemoryIndexFiles {
    /// Bytes of every file held (what the store bills for).
    pub fn stored_bytes(&self) -> usize {
        self.files.lock().unwrap().values().map(Vec::len).sum()
    }

    pub fn file_count(&self) -> usize {
        self.files.lock().unwrap().len()
    }
}

#[async_trait]
impl IndexFiles for MemoryIndexFiles {
    async fn manifests(&self, shards: &[u32]) -> Result<HashMap<u32, IndexManifest>, PortError> {
        let held = self.manifests.lock().unwrap();
        Ok(shards.iter().filter_map(|s| held.get(s).map(|m| (*s, m.clone()))).collect())
    }

    async fn publish(&self, shard: u32, previous: Option<u64>, next: &IndexManifest) -> Result<bool, PortError> {
        let mut held = self.manifests.lock().unwrap();
        if held.get(&shard).map(|m| m.version) != previous {
            return Ok(false);
        }
        held.insert(shard, next.clone());
        Ok(true)
    }

    async fn read(&self, shard: u32, file: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self.files.lock().unwrap().get(&(shard, file.to_owned())).cloned())
    }

    async fn write(&self, shard: u32, file: &str, bytes: Vec<u8>) -> Result<(), PortError> {
        self.files.lock().unwrap().insert((shard, file.to_owned()), bytes);
        Ok(())
    }

    async fn remove(&self, shard: u32, files: &[String]) -> Result<(), PortError> {
        let mut held = self.files.lock().unwrap();
        for file in files {
            held.remove(&(shard, file.clone()));
        }
        Ok(())
    }
}
