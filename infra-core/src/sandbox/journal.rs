//! The sandbox's persistence: an append-only journal of JSON lines, one per object written or
//! deleted (and per lock and id counter change), compacted when it grows. Several processes may
//! share a file: every operation takes an exclusive file lock and first reads what others
//! appended. A torn last line (a killed writer) is ignored; a malformed line is skipped with a
//! warning.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::SandboxObject;
use crate::provider::LockInfo;

/// One journal line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Entry {
    Put { object: SandboxObject },
    Delete { id: String },
    Lock { stack: String, info: LockInfo },
    Unlock { stack: String },
    Counter { key: String, value: u64 },
}

/// What the journal holds once replayed, and how far it was read.
#[derive(Default)]
pub(super) struct State {
    /// Objects by id (written through [`State::put`] and [`State::remove`], which keep
    /// `tokens` up to date).
    pub(super) objects: BTreeMap<String, SandboxObject>,
    /// The id of the object each idempotency token made: a create looks its token up here
    /// instead of scanning every object (quadratic over an apply).
    tokens: HashMap<String, String>,
    /// Apply locks by stack.
    pub(super) locks: BTreeMap<String, LockInfo>,
    /// Id generations by object identity.
    pub(super) counters: BTreeMap<String, u64>,
    offset: u64,
    lines: u64,
    #[cfg(unix)]
    inode: u64,
}

/// The journal file and its replayed state.
pub(super) struct Journal {
    path: PathBuf,
    state: Mutex<State>,
}

impl Journal {
    /// The journal at `path` (nothing is read until the first [`Journal::with_state`]).
    pub(super) fn new(path: PathBuf) -> Self {
        Journal {
            path,
            state: Mutex::new(State::default()),
        }
    }

    /// The journal file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the up-to-date state under the file lock, then journals the entries it
    /// returns.
    pub(super) fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State) -> std::io::Result<(Vec<Entry>, T)>,
    ) -> std::io::Result<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"))?;
        lock.lock()?;
        let result = (|| {
            catch_up(&self.path, &mut state)?;
            let (entries, out) = f(&mut state)?;
            if !entries.is_empty() {
                append(&self.path, &mut state, &entries)?;
            }
            if state.lines > 1000 && state.lines > 4 * (state.objects.len() as u64 + 1) {
                compact(&self.path, &mut state)?;
            }
            Ok(out)
        })();
        let _ = lock.unlock();
        result
    }
}

fn catch_up(path: &Path, state: &mut State) -> std::io::Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            *state = State::default();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    #[cfg(unix)]
    let replaced = {
        use std::os::unix::fs::MetadataExt;
        let ino = meta.ino();
        let replaced = ino != state.inode;
        state.inode = ino;
        replaced
    };
    #[cfg(not(unix))]
    let replaced = false;
    if replaced || meta.len() < state.offset {
        let inode = state.inode_value();
        *state = State::default();
        state.set_inode(inode);
    }
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(state.offset))?;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break; // end, or a torn last line from a killed writer: ignored
        }
        state.offset += n as u64;
        state.lines += 1;
        match serde_json::from_str::<Entry>(&line) {
            Ok(entry) => state.apply(entry),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "sandbox: skipping a malformed journal line")
            }
        }
    }
    Ok(())
}

impl State {
    fn inode_value(&self) -> u64 {
        #[cfg(unix)]
        {
            self.inode
        }
        #[cfg(not(unix))]
        {
            0
        }
    }
    fn set_inode(&mut self, inode: u64) {
        #[cfg(unix)]
        {
            self.inode = inode;
        }
        let _ = inode;
    }
    /// Stores `object` (a new one, or a new version of one).
    pub(super) fn put(&mut self, object: SandboxObject) {
        if let Some(token) = &object.token {
            self.tokens.insert(token.clone(), object.id.clone());
        }
        if let Some(old) = self.objects.insert(object.id.clone(), object) {
            self.forget_token(&old);
        }
    }

    /// Removes the object `id`; returns it.
    pub(super) fn remove(&mut self, id: &str) -> Option<SandboxObject> {
        let old = self.objects.remove(id)?;
        self.forget_token(&old);
        Some(old)
    }

    /// The object a create with idempotency token `token` made, if it is still there.
    pub(super) fn by_token(&self, token: &str) -> Option<&SandboxObject> {
        let id = self.tokens.get(token)?;
        self.objects
            .get(id)
            .filter(|o| o.token.as_deref() == Some(token))
    }

    /// Drops `old`'s token from the index unless the object now stored under its id (a new
    /// version of it) still carries it.
    fn forget_token(&mut self, old: &SandboxObject) {
        let Some(token) = &old.token else { return };
        let still = self
            .objects
            .get(&old.id)
            .is_some_and(|o| o.token.as_ref() == Some(token));
        if !still && self.tokens.get(token) == Some(&old.id) {
            self.tokens.remove(token);
        }
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Put { object } => self.put(object),
            Entry::Delete { id } => {
                self.remove(&id);
            }
            Entry::Lock { stack, info } => {
                self.locks.insert(stack, info);
            }
            Entry::Unlock { stack } => {
                self.locks.remove(&stack);
            }
            Entry::Counter { key, value } => {
                self.counters.insert(key, value);
            }
        }
    }
}

fn append(path: &Path, state: &mut State, entries: &[Entry]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut buf, e)?;
        buf.push(b'\n');
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    // Under the file lock, just caught up: the file ends where the state was read to, and the
    // state already holds what these entries say, so the offset moves past them without
    // reading them back. Otherwise (a torn last line left by a killed writer, or a file
    // replaced meanwhile) re-read what we wrote and anything before it, so offsets stay exact.
    let at_end = file.metadata()?.len() == state.offset;
    file.write_all(&buf)?;
    if at_end && same_file(&file, state) {
        state.offset += buf.len() as u64;
        state.lines += entries.len() as u64;
        return Ok(());
    }
    catch_up(path, state)
}

/// Whether `file` is the journal the state was read from.
fn same_file(file: &File, state: &State) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().is_ok_and(|m| m.ino() == state.inode)
    }
    #[cfg(not(unix))]
    {
        let _ = (file, state);
        true
    }
}

fn compact(path: &Path, state: &mut State) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut buf = Vec::new();
    for (key, value) in &state.counters {
        serde_json::to_writer(
            &mut buf,
            &Entry::Counter {
                key: key.clone(),
                value: *value,
            },
        )?;
        buf.push(b'\n');
    }
    for object in state.objects.values() {
        serde_json::to_writer(
            &mut buf,
            &Entry::Put {
                object: object.clone(),
            },
        )?;
        buf.push(b'\n');
    }
    for (stack, info) in &state.locks {
        serde_json::to_writer(
            &mut buf,
            &Entry::Lock {
                stack: stack.clone(),
                info: info.clone(),
            },
        )?;
        buf.push(b'\n');
    }
    fs::write(&tmp, &buf)?;
    fs::rename(&tmp, path)?;
    *state = State::default();
    catch_up(path, state)
}
