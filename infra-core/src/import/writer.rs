//! The module writer: [`Found`] objects in, a Rust module out, as they come.

use std::collections::HashMap;
use std::io::{self, Write};

use super::format::{self, Formatting};
use super::names::Namer;
use super::{rust_str, Discovered, Found, ImportNames};

/// The methods of [`Resource`](crate::dsl::Resource) (the options every builder has): a chain
/// calling one needs the trait in scope.
const RESOURCE_METHODS: &[&str] = &[
    "protect",
    "create_before_destroy",
    "ignore_changes",
    "suppress",
    "annotate",
    "depends_on",
];

/// How many objects' statements are formatted together (with `rustfmt`, one process per
/// chunk): large enough that the processes cost little, small enough that memory stays flat.
const CHUNK_OBJECTS: usize = 200;

/// What a [`ModuleWriter`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Objects declared (one `stack.add` and one `stack.adopt` each).
    pub objects: usize,
    /// Objects listed as comments only: `infra` can't declare them, or their kind has no
    /// code generation.
    pub comments: usize,
}

/// Writes the Rust module `import` produces to an [`io::Write`], object by object, as
/// discovery hands them over ([`Provider::discover`](crate::provider::Provider::discover)). It
/// keeps the names given so far (for references and uniqueness), never the objects:
///
/// ```
/// # use infra_core::import::{ModuleWriter, Formatting};
/// let mut module = Vec::new();
/// let writer = ModuleWriter::new(&mut module, "the sandbox").unwrap();
/// let (_, counts) = writer.finish().unwrap();
/// assert_eq!(counts.objects, 0);
/// assert!(String::from_utf8(module).unwrap().contains("pub fn declare(stack: &mut Stack)"));
/// ```
///
/// The module: a header saying where it came from and how to use it, `use infra::core::Stack;`,
/// and `pub fn declare(stack: &mut Stack)` with, per object, its notes and the kind's comments
/// as `//` lines, a `use` of its builder type the first time that type appears, one
/// `let <var> = stack.add(<builder chain>);` and one `stack.adopt(&<var>, "<id>");`. An object
/// `infra` can't declare, or whose kind has no code generation, is a comment with the reason.
/// Address names and variables are sanitised and made unique by suffix, the same for the same
/// input. The statements are formatted by `rustfmt` when it is installed (else the writer's
/// own layout, which follows rustfmt's for builder chains).
pub struct ModuleWriter<W: Write> {
    out: W,
    names: ImportNames,
    namer: Namer,
    /// Builder types by their last path segment (`Vpc` → `infra::aws::Vpc`): a second type of
    /// the same short name is written with its full path.
    uses: HashMap<&'static str, &'static str>,
    /// Whether `use infra::core::dsl::Resource;` was written (the first chain calling one of
    /// its methods, `.ignore_changes(…)` say, writes it).
    resource_trait: bool,
    formatting: Formatting,
    chunk: String,
    chunk_objects: usize,
    /// Whether a chunk was written (the next one starts with a blank line).
    wrote_body: bool,
    counts: ImportCounts,
}

impl<W: Write> ModuleWriter<W> {
    /// Starts the module: writes its header (naming `source`, what it was imported from), the
    /// `use` line and the opening of `declare`. Formatting is [`Formatting::detect`]ed.
    pub fn new(out: W, source: &str) -> io::Result<Self> {
        Self::with_formatting(out, source, Formatting::detect())
    }

    /// [`ModuleWriter::new`] with the given formatting.
    pub fn with_formatting(mut out: W, source: &str, formatting: Formatting) -> io::Result<Self> {
        let mut header = String::new();
        for line in [
            format!("Objects that belong to no stack, imported by `infra import` from {source}."),
            String::new(),
            "Review it, then call `declare(&mut stack)` where your stack is built (or move its \
             lines there). Each object is declared as it was read, and `stack.adopt` names the \
             object its declaration stands for: the next plan shows one adoption per object \
             (`<`: the stack's ownership is written on it, nothing else changes), `adopt` \
             applies exactly those, and the plan after it is empty. Objects `infra` can't \
             declare are listed as comments with the reason."
                .to_string(),
        ] {
            for l in wrap(&line, 96) {
                header.push_str(&format!("//!{}{l}\n", if l.is_empty() { "" } else { " " }));
            }
        }
        header.push_str(
            "\nuse infra::core::Stack;\n\n/// Declares the imported objects in `stack`, each with \
             its adoption.\npub fn declare(stack: &mut Stack) {\n",
        );
        out.write_all(header.as_bytes())?;
        Ok(ModuleWriter {
            out,
            names: ImportNames::new(),
            namer: Namer::default(),
            uses: HashMap::new(),
            resource_trait: false,
            formatting,
            chunk: String::new(),
            chunk_objects: 0,
            wrote_body: false,
            counts: ImportCounts::default(),
        })
    }

    /// The names given so far, by provider id.
    pub fn names(&self) -> &ImportNames {
        &self.names
    }

    /// What was written so far.
    pub fn counts(&self) -> ImportCounts {
        self.counts
    }

    /// Writes one object (or its comment).
    pub fn found(&mut self, found: Found) -> io::Result<()> {
        match found {
            Found::Object(object) => self.object(object),
            Found::Inexpressible { what, id, reason } => {
                self.counts.comments += 1;
                self.separate();
                comment(
                    &mut self.chunk,
                    &format!("not imported: {what} {id}: {reason}"),
                );
            }
        }
        self.chunk_objects += 1;
        if self.chunk_objects >= CHUNK_OBJECTS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// A blank line between objects (the first of a chunk gets it when the chunk is written).
    fn separate(&mut self) {
        if !self.chunk.is_empty() {
            self.chunk.push('\n');
        }
    }

    fn object(&mut self, object: Discovered) {
        let kind = object.schema.kind;
        let Some(codegen) = object.schema.codegen else {
            self.counts.comments += 1;
            self.separate();
            comment(
                &mut self.chunk,
                &format!(
                    "not imported: {kind} {} ({}): `infra` can't write kind `{kind}` as Rust yet",
                    object.id,
                    rust_str(&object.name)
                ),
            );
            for note in &object.notes {
                comment(&mut self.chunk, note);
            }
            return;
        };
        self.counts.objects += 1;
        self.separate();
        let (name, var) = self.namer.name(kind, &object.name);
        let generated = codegen(&object, &name, &self.names);
        for note in object.notes.iter().chain(&generated.comments) {
            comment(&mut self.chunk, note);
        }
        let mut expr = generated.expr.trim().to_string();
        let path = generated.type_path;
        if !path.is_empty() {
            let short = path.rsplit("::").next().unwrap_or(path);
            match self.uses.get(short) {
                None => {
                    self.uses.insert(short, path);
                    self.chunk.push_str(&format!("    use {path};\n"));
                }
                Some(&known) if known == path => {}
                // Another type of the same name is in scope: this one goes by its full path.
                Some(_) => {
                    if let Some(rest) = expr.strip_prefix(short) {
                        expr = format!("{path}{rest}");
                    }
                }
            }
        }
        if !self.resource_trait
            && format::chain_links(&expr).iter().skip(1).any(|link| {
                let method = link.trim_start_matches('.');
                RESOURCE_METHODS
                    .iter()
                    .any(|m| method.strip_prefix(m).is_some_and(|r| r.starts_with('(')))
            })
        {
            self.resource_trait = true;
            self.chunk.push_str("    use infra::core::dsl::Resource;\n");
        }
        self.chunk.push_str(&format::let_add(&var, &expr));
        self.chunk
            .push_str(&format::adopt(&var, &rust_str(&object.id)));
        self.names.insert(kind, object.id.clone(), var.clone());
        for alias in object.aliases {
            self.names.insert(kind, alias, var.clone());
        }
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if !self.chunk.is_empty() {
            let body = format::format_body(&self.formatting, &self.chunk);
            if self.wrote_body {
                self.out.write_all(b"\n")?;
            }
            self.out.write_all(body.trim_end().as_bytes())?;
            self.out.write_all(b"\n")?;
            self.wrote_body = true;
        }
        self.chunk.clear();
        self.chunk_objects = 0;
        self.out.flush()
    }

    /// Writes what is left and closes `declare`; returns the writer and the counts.
    pub fn finish(mut self) -> io::Result<(W, ImportCounts)> {
        self.flush_chunk()?;
        if self.counts.objects == 0 {
            self.out
                .write_all(b"    let _ = stack; // nothing was imported\n")?;
        }
        let summary = format!(
            "}}\n\n// {} object{} declared, {} listed as comments.\n",
            self.counts.objects,
            if self.counts.objects == 1 { "" } else { "s" },
            self.counts.comments
        );
        self.out.write_all(summary.as_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.counts))
    }
}

/// `text` as `//` lines at the body's indent: one per line of it, long ones wrapped.
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        for l in wrap(line.trim_end(), 92) {
            if l.is_empty() {
                out.push_str("    //\n");
            } else {
                out.push_str(&format!("    // {l}\n"));
            }
        }
    }
}

/// `line` cut at spaces into pieces of at most `width` characters (a longer word stays whole).
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    out.push(cur);
    out
}
