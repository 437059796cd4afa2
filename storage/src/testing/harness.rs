//! How the suite opens a backend and simulates a restart.

use std::path::{Path, PathBuf};

use crate::config::{Backend, StorageConfig};
use crate::memory::MemoryPersister;
use crate::persister::{Persister, Result};

/// Opens fresh persisters of one backend and restarts them, for the [conformance
/// suite](crate::testing::suite) and the property tests.
pub trait Harness {
    /// The backend's name, which [`Persister::backend_name`] must return. Every
    /// assertion message of the suite starts with it.
    fn name(&self) -> &str;

    /// A new, empty persister, independent of every earlier one.
    fn open(&mut self) -> Box<dyn Persister>;

    /// Simulates a restart of `old`, which must be the persister most recently returned
    /// by [`open`](Harness::open) or `reopen`: drops it and opens what is durable.
    fn reopen(&mut self, old: Box<dyn Persister>) -> Box<dyn Persister>;
}

/// [`MemoryPersister`]: a restart continues on a
/// [`crash_image`](MemoryPersister::crash_image) of the old instance.
#[derive(Debug, Default)]
pub struct MemoryHarness {
    current: Option<MemoryPersister>,
}

impl MemoryHarness {
    /// A harness for the memory backend.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Harness for MemoryHarness {
    fn name(&self) -> &str {
        "memory"
    }

    fn open(&mut self) -> Box<dyn Persister> {
        let p = MemoryPersister::new();
        self.current = Some(p.clone());
        Box::new(p)
    }

    fn reopen(&mut self, old: Box<dyn Persister>) -> Box<dyn Persister> {
        let image = self
            .current
            .as_ref()
            .expect("memory harness: reopen before open")
            .crash_image();
        drop(old);
        self.current = Some(image.clone());
        Box::new(image)
    }
}

/// Opens a persister in a directory.
pub type Opener = Box<dyn FnMut(&Path) -> Result<Box<dyn Persister>>>;

/// A backend that lives in a directory (file, rocksdb): every [`open`](Harness::open)
/// uses a new subdirectory of `root`; a restart drops the persister and opens the same
/// directory again.
pub struct DirHarness {
    name: String,
    root: PathBuf,
    opener: Opener,
    opened: u64,
    current: Option<PathBuf>,
}

impl std::fmt::Debug for DirHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirHarness")
            .field("name", &self.name)
            .field("root", &self.root)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl DirHarness {
    /// Opens `backend` through [`StorageConfig::open`] with default settings, in
    /// subdirectories of `root`.
    pub fn new(backend: Backend, root: impl Into<PathBuf>) -> Self {
        Self::with_config(StorageConfig::new(backend, "unset"), root)
    }

    /// Like [`new`](DirHarness::new), with `config` (its `dir` is replaced per store).
    pub fn with_config(config: StorageConfig, root: impl Into<PathBuf>) -> Self {
        let name = config.backend.name().to_string();
        Self::with_opener(
            name,
            root,
            Box::new(move |dir: &Path| {
                let mut c = config.clone();
                c.dir = Some(dir.to_path_buf());
                c.open()
            }),
        )
    }

    /// A harness whose stores are opened by `opener` (e.g. with a fault plan).
    pub fn with_opener(name: impl Into<String>, root: impl Into<PathBuf>, opener: Opener) -> Self {
        Self {
            name: name.into(),
            root: root.into(),
            opener,
            opened: 0,
            current: None,
        }
    }

    /// The directory of the store most recently opened.
    pub fn current_dir(&self) -> Option<&Path> {
        self.current.as_deref()
    }

    fn open_dir(&mut self, dir: &Path) -> Box<dyn Persister> {
        match (self.opener)(dir) {
            Ok(p) => p,
            Err(e) => panic!("[{}] open {}: {e}", self.name, dir.display()),
        }
    }
}

impl Harness for DirHarness {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&mut self) -> Box<dyn Persister> {
        self.opened += 1;
        let dir = self.root.join(format!("store-{}", self.opened));
        assert!(
            !dir.exists(),
            "[{}] {} already exists: give the harness an empty root",
            self.name,
            dir.display()
        );
        let p = self.open_dir(&dir);
        self.current = Some(dir);
        p
    }

    fn reopen(&mut self, old: Box<dyn Persister>) -> Box<dyn Persister> {
        let dir = self
            .current
            .clone()
            .unwrap_or_else(|| panic!("[{}] reopen before open", self.name));
        drop(old);
        self.open_dir(&dir)
    }
}
