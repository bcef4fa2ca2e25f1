//! The sandbox's persistence: an append-only journal of JSON lines, one per object written or
//! deleted (and per lock and id counter change), compacted when it grows. Several processes may
//! share a file: every operation takes an exclusive file lock and first reads what others
//! appended. A torn last line (a killed writer) is ignored; a malformed line is skipped with a
//! warning.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::value::MapAccessDeserializer;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::SandboxObject;
use crate::hash::HashMap;
use crate::provider::LockInfo;

/// One journal line, written internally tagged (`{"op":"put","object":{…}}`), the format every
/// version has written. It is read by hand ([`Entry`]'s `Deserialize`): serde's derived reader
/// for an internally tagged enum buffers the whole line into its `Content` tree before it looks
/// at the tag, which was most of the time a fresh process spent opening a journal.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Entry {
    Put { object: SandboxObject },
    Delete { id: String },
    Lock { stack: String, info: LockInfo },
    Unlock { stack: String },
    Counter { key: String, value: u64 },
}

#[derive(Deserialize)]
struct PutFields {
    object: SandboxObject,
}
#[derive(Deserialize)]
struct DeleteFields {
    id: String,
}
#[derive(Deserialize)]
struct LockFields {
    stack: String,
    info: LockInfo,
}
#[derive(Deserialize)]
struct StackField {
    stack: String,
}
#[derive(Deserialize)]
struct CounterFields {
    key: String,
    value: u64,
}

/// The entry of operation `op`, its fields read from `fields` (the rest of the line's object).
fn entry_of<'de, D: Deserializer<'de>>(op: &str, fields: D) -> Result<Entry, D::Error> {
    Ok(match op {
        "put" => Entry::Put {
            object: PutFields::deserialize(fields)?.object,
        },
        "delete" => Entry::Delete {
            id: DeleteFields::deserialize(fields)?.id,
        },
        "lock" => {
            let f = LockFields::deserialize(fields)?;
            Entry::Lock {
                stack: f.stack,
                info: f.info,
            }
        }
        "unlock" => Entry::Unlock {
            stack: StackField::deserialize(fields)?.stack,
        },
        "counter" => {
            let f = CounterFields::deserialize(fields)?;
            Entry::Counter {
                key: f.key,
                value: f.value,
            }
        }
        other => {
            return Err(D::Error::unknown_variant(
                other,
                &["put", "delete", "lock", "unlock", "counter"],
            ))
        }
    })
}

/// Reads a line as the derived internally tagged reader would, without its buffering when
/// `op` comes first (as this and every earlier version write it): the rest of the object is then
/// read straight into the variant's fields. A line with `op` elsewhere (written by hand, say)
/// is buffered into a JSON object and read from that.
impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a journal entry (an object with an `op`)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
                let Some(first) = map.next_key::<String>()? else {
                    return Err(A::Error::missing_field("op"));
                };
                if first == "op" {
                    let op: String = map.next_value()?;
                    return entry_of(&op, MapAccessDeserializer::new(map));
                }
                let mut object = serde_json::Map::new();
                object.insert(first, map.next_value()?);
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    object.insert(k, v);
                }
                let op = match object.remove("op") {
                    Some(serde_json::Value::String(op)) => op,
                    Some(_) => return Err(A::Error::custom("`op` must be a string")),
                    None => return Err(A::Error::missing_field("op")),
                };
                entry_of(&op, serde_json::Value::Object(object)).map_err(A::Error::custom)
            }
        }
        d.deserialize_map(EntryVisitor)
    }
}

/// What the journal holds once replayed, and how far it was read.
#[derive(Default)]
pub(super) struct State {
    /// Objects by id (written through [`State::put`] and [`State::remove`], which keep
    /// `tokens` up to date). A hash map: replaying a large journal inserts every object, and
    /// a B-tree keyed by random hex ids made that serial replay most of a fresh plan's
    /// journal time. Whatever reaches a caller in order goes through [`State::sorted`].
    pub(super) objects: HashMap<String, SandboxObject>,
    /// The id of the object each idempotency token made: a create looks its token up here
    /// instead of scanning every object (quadratic over an apply). Built by the first create
    /// ([`State::by_token`]), not while replaying: a plan never needs it.
    tokens: Option<HashMap<String, String>>,
    /// Apply locks by stack.
    pub(super) locks: BTreeMap<String, LockInfo>,
    /// Id generations by object identity (written sorted by [`compact`]).
    pub(super) counters: HashMap<String, u64>,
    offset: u64,
    lines: u64,
    #[cfg(unix)]
    inode: u64,
}

/// The journal file and its replayed state.
pub(super) struct Journal {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl Journal {
    /// The journal at `path` (nothing is read until the first [`Journal::with_state`] or
    /// [`Journal::catch_up_in_background`]).
    pub(super) fn new(path: PathBuf) -> Self {
        Journal {
            path,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Reads what the file holds on another thread, so that the caller's first use finds the
    /// state replayed, or waits only for the rest of the replay: a fresh process opening a
    /// large journal parses it while the engine validates the stack. Reading is incremental,
    /// so whichever of this thread and a first [`Journal::with_state`] takes the state first
    /// reads the file and the other finds nothing new; an error here is met again (and
    /// returned) by that call.
    pub(super) fn catch_up_in_background(&self) {
        let (path, state) = (self.path.clone(), self.state.clone());
        let spawned = std::thread::Builder::new()
            .name("sandbox-journal".into())
            .spawn(move || {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = locked(&path, &mut state, |_| Ok((Vec::new(), ()))) {
                    tracing::debug!(path = %path.display(), error = %e, "reading the sandbox journal ahead failed");
                }
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "no thread to read the sandbox journal ahead");
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
        locked(&self.path, &mut state, f)
    }
}

/// [`Journal::with_state`]'s work, its caller holding `state`: under the file lock, catch up
/// with the file, run `f`, journal its entries, compact when the file has grown.
fn locked<T>(
    path: &Path,
    state: &mut State,
    f: impl FnOnce(&mut State) -> std::io::Result<(Vec<Entry>, T)>,
) -> std::io::Result<T> {
    let lock = lock_file(path)?;
    lock.lock()?;
    let result = (|| {
        catch_up(path, state)?;
        let (entries, out) = f(state)?;
        if !entries.is_empty() {
            append(path, state, &entries)?;
        }
        if state.lines > 1000 && state.lines > 4 * (state.objects.len() as u64 + 1) {
            compact(path, state)?;
        }
        Ok(out)
    })();
    let _ = lock.unlock();
    result
}

/// The lock file beside the journal at `path` (made if missing), which every operation holds.
pub(super) fn lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))
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
    let mut file = file;
    file.seek(SeekFrom::Start(state.offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    // Whole lines only: a torn last line from a killed writer is left for a later read.
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    state.offset += whole as u64;
    // Runs of whole lines, parsed on several threads when there are many (a fresh process
    // opening a large journal) and replayed here in order, each run as soon as it is parsed.
    let runs = runs_of_lines(&bytes[..whole], crate::parallel::threads());
    crate::parallel::map_consume_ordered(
        &runs,
        crate::parallel::threads(),
        |run| parse_lines(run),
        |entries| {
            state.lines += entries.len() as u64;
            for entry in entries {
                match entry {
                    Ok(entry) => state.apply(entry),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "sandbox: skipping a malformed journal line")
                    }
                }
            }
        },
    );
    Ok(())
}

/// `bytes` (whole lines) cut into runs of consecutive whole lines: one run when they are few,
/// else about 16 per thread, so that the replay of a run overlaps the parse of later ones.
fn runs_of_lines(bytes: &[u8], threads: usize) -> Vec<&[u8]> {
    let pieces = if threads < 2 || bytes.len() < PARALLEL_BYTES {
        1
    } else {
        (threads * 16).min(bytes.len() / (PARALLEL_BYTES / 16))
    };
    let mut runs = Vec::with_capacity(pieces);
    let mut rest = bytes;
    for left in (1..=pieces).rev() {
        if rest.is_empty() {
            break;
        }
        let end = if left == 1 {
            rest.len()
        } else {
            // The end of the line that holds the run's last byte at an even share.
            let at = rest.len() / left;
            rest[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| at + i + 1)
        };
        let (run, after) = rest.split_at(end);
        runs.push(run);
        rest = after;
    }
    runs
}

/// The lines of `run`, parsed in order.
fn parse_lines(run: &[u8]) -> Vec<serde_json::Result<Entry>> {
    run.split_inclusive(|&b| b == b'\n')
        .map(serde_json::from_slice)
        .collect()
}

/// The number of new bytes from which [`catch_up`] parses them on several threads (~2,000
/// lines of a typical journal).
const PARALLEL_BYTES: usize = 1 << 20;

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
    /// The objects `keep` keeps, in id order (the order every output of the sandbox keeps).
    pub(super) fn sorted(
        &self,
        keep: impl Fn(&SandboxObject) -> bool,
    ) -> impl Iterator<Item = &SandboxObject> {
        let mut objects: Vec<&SandboxObject> = self.objects.values().filter(|o| keep(o)).collect();
        objects.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        objects.into_iter()
    }

    /// Stores `object` (a new one, or a new version of one).
    pub(super) fn put(&mut self, object: SandboxObject) {
        if let (Some(tokens), Some(token)) = (&mut self.tokens, &object.token) {
            tokens.insert(token.clone(), object.id.clone());
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
    pub(super) fn by_token(&mut self, token: &str) -> Option<&SandboxObject> {
        let objects = &self.objects;
        let tokens = self.tokens.get_or_insert_with(|| {
            objects
                .values()
                .filter_map(|o| Some((o.token.clone()?, o.id.clone())))
                .collect()
        });
        let id = tokens.get(token)?;
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
        if let Some(tokens) = &mut self.tokens {
            if !still && tokens.get(token) == Some(&old.id) {
                tokens.remove(token);
            }
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
    let mut counters: Vec<(&String, &u64)> = state.counters.iter().collect();
    counters.sort_unstable();
    for (key, value) in counters {
        serde_json::to_writer(
            &mut buf,
            &Entry::Counter {
                key: key.clone(),
                value: *value,
            },
        )?;
        buf.push(b'\n');
    }
    for object in state.sorted(|_| true) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Result<String, String> {
        serde_json::from_str::<Entry>(line)
            .map(|e| serde_json::to_string(&e).unwrap())
            .map_err(|e| e.to_string())
    }

    /// Lines as earlier versions wrote them (serde's derived internally tagged writer) read back
    /// to the same entry, whatever the key order; bad lines are still refused.
    #[test]
    fn journal_lines_of_every_version_and_order_read_back() {
        let lines = [
            r#"{"op":"counter","key":"bench/bench_network.net-0","value":1}"#,
            r#"{"op":"put","object":{"id":"group-5f69007d7c049cd6","kind":"bench_group","stack":"bench","name":"grp-0-1","props":{"network_id":"network-43978c3d9eb55f84","pw":{"$sensitive":"sha256:0123456789abcdef"},"rules":[{"group_id":"group-2452bc6005082ae9","port":1000,"protocol":"tcp"},{"cidr":"10.0.0.0/8","port":1001,"protocol":"tcp"}]},"protect":false,"token":"bench_group.grp-0-1","declared":"d1:0IcbgWkVLnI"}}"#,
            r#"{"op":"put","object":{"id":"x-1","kind":"k","stack":null,"name":"n","props":{}}}"#,
            r#"{"op":"delete","id":"group-5f69007d7c049cd6"}"#,
            r#"{"op":"lock","stack":"prod","info":{"holder":"h:pid1:0000abcd","since_unix":1700000000,"operation":"apply"}}"#,
            r#"{"op":"unlock","stack":"prod"}"#,
        ];
        for line in lines {
            let written = read(line).unwrap();
            if !line.contains(r#""props":{}}"#) {
                // (That one lacks the fields with defaults, which are written out.)
                assert_eq!(written, line, "written as it was read");
            }
            let back: serde_json::Value = serde_json::from_str(&written).unwrap();
            let orig: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(back["op"], orig["op"], "{line}");
            // The same entry when `op` is last (the buffered path) or an unknown field is added.
            let op = format!(r#""op":{},"#, orig["op"]);
            let rest = line.strip_prefix('{').unwrap().replacen(&op, "", 1);
            let rest = rest.strip_suffix('}').unwrap();
            let text = format!(
                r#"{{{rest},"zz_unknown":[1,{{"a":2}}],{}}}"#,
                &op[..op.len() - 1]
            );
            assert!(!text.starts_with("{\"op\""), "{text}");
            assert_eq!(read(&text), Ok(written.clone()), "{text}");
            // An unknown field right after `op` (the fast path) is skipped too.
            let extra = line.replacen(',', r#","zz":{"$sensitive":7},"#, 1);
            assert_eq!(read(&extra), Ok(written), "{extra}");
        }
        for bad in [
            r#"{"op":"rename","id":"x"}"#,
            r#"{"id":"x"}"#,
            r#"{}"#,
            r#"{"op":"delete"}"#,
            r#"{"id":"x","op":7}"#,
            r#"{"op":"counter","key":"k","value":"1"}"#,
            r#"[1]"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    fn put_line(i: usize) -> String {
        format!(
            r#"{{"op":"put","object":{{"id":"x-{i}","kind":"k","stack":"s","name":"n{i}","props":{{"i":{i}}},"token":"t{i}"}}}}"#
        )
    }

    /// Journal bytes cut into runs and parsed on several threads come back as one parse of
    /// every line gives them, in order, malformed lines included (as errors, in their place);
    /// every run ends at a line's end.
    #[test]
    fn lines_parsed_in_runs_on_several_threads_come_back_in_order() {
        let text: String = (0..20_000)
            .map(|i| {
                if i % 97 == 5 {
                    "{not json\n".to_string()
                } else {
                    put_line(i) + "\n"
                }
            })
            .collect();
        assert!(text.len() > PARALLEL_BYTES);
        let summary = |entries: Vec<serde_json::Result<Entry>>| -> Vec<String> {
            entries
                .into_iter()
                .map(|e| match e {
                    Ok(e) => serde_json::to_string(&e).unwrap(),
                    Err(_) => "error".into(),
                })
                .collect()
        };
        let one = summary(parse_lines(text.as_bytes()));
        assert_eq!(one.len(), 20_000);
        assert_eq!(one.iter().filter(|l| *l == "error").count(), 207);
        for threads in [2, 3, 8] {
            let runs = runs_of_lines(text.as_bytes(), threads);
            assert!(runs.len() > threads, "{threads}: {} runs", runs.len());
            assert!(runs.iter().all(|r| r.ends_with(b"\n")));
            let mut several = Vec::new();
            crate::parallel::map_consume_ordered(
                &runs,
                threads,
                |run| parse_lines(run),
                |entries| several.extend(summary(entries)),
            );
            assert_eq!(several, one, "{threads}");
        }
        assert_eq!(runs_of_lines(b"", 2).len(), 0);
        assert_eq!(runs_of_lines(put_line(1).as_bytes(), 2).len(), 1);
    }

    /// Lines enough for a journal of them to be parsed on several threads.
    const LARGE: usize = PARALLEL_BYTES / 64;

    /// A journal read back whole (a torn last line left for later) replays every line in
    /// order; the token index, built at the first lookup, follows later puts and deletes.
    #[test]
    fn a_large_journal_replays_in_order_and_the_token_index_is_built_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut text: String = (0..LARGE + 10).map(|i| put_line(i) + "\n").collect();
        text.push_str(r#"{"op":"delete","id":"x-3"}"#);
        text.push('\n');
        // x-7 again, as a later version of it without a token
        text.push_str(
            r#"{"op":"put","object":{"id":"x-7","kind":"k","stack":"s","name":"n7","props":{}}}"#,
        );
        text.push('\n');
        text.push_str(r#"{"op":"put","object":{"id":"torn""#);
        std::fs::write(&path, &text).unwrap();
        let mut state = State::default();
        catch_up(&path, &mut state).unwrap();
        assert!(text.len() > PARALLEL_BYTES);
        assert_eq!(state.lines as usize, LARGE + 12);
        assert_eq!(state.objects.len(), LARGE + 9);
        assert!(state.tokens.is_none(), "a replay builds no token index");
        assert!(state.by_token("t3").is_none(), "deleted");
        assert!(
            state.by_token("t7").is_none(),
            "its new version has no token"
        );
        assert_eq!(state.by_token("t8").map(|o| o.id.as_str()), Some("x-8"));
        let last = LARGE + 9;
        state.remove(&format!("x-{last}"));
        assert!(state.by_token(&format!("t{last}")).is_none());
        // The torn line, completed by its writer, is read by the next catch-up.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#","kind":"k","stack":"s","name":"torn","props":{},"token":"tt"}}"#)
            .unwrap();
        file.write_all(b"\n").unwrap();
        catch_up(&path, &mut state).unwrap();
        assert_eq!(state.by_token("tt").map(|o| o.id.as_str()), Some("torn"));
    }
}
