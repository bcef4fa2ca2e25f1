//! Import on the sandbox: discovery (order, filters, an unknown filter), and the module writer
//! (names, references, comments, inexpressible objects, kinds without code generation,
//! formatting that `rustfmt --check` accepts).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use infra_core::dsl::KindSchema;
use infra_core::engine::Engine;
use infra_core::import::{
    rust_str, Discovered, Formatting, Found, Generated, ImportFilter, ImportNames, ModuleWriter,
};
use infra_core::sandbox::SandboxProvider;
use infra_core::Value;

/// A disk: a size and labels.
pub(crate) static DISK: KindSchema = KindSchema::new("test_disk", "test")
    .computed(&["id"])
    .movable()
    .codegen(disk_code);

fn disk_code(o: &Discovered, name: &str, _: &ImportNames) -> Generated {
    let mut expr = format!("Disk::new({})", rust_str(name));
    if let Some(Value::Int(n)) = o.props.get("size_gb") {
        expr.push_str(&format!(".size_gb({n})"));
    }
    Generated {
        type_path: "crate::disks::Disk",
        expr,
        comments: Vec::new(),
    }
}

/// A mount of a disk: a reference written as `.disk(&var)`.
pub(crate) static MOUNT: KindSchema = KindSchema::new("test_mount", "test")
    .computed(&["id"])
    .codegen(mount_code);

fn mount_code(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut expr = format!("Mount::new({})", rust_str(name));
    let mut comments = Vec::new();
    if let Some(id) = o.props.get("disk_id").and_then(Value::as_str) {
        match names.reference(DISK.kind, id) {
            Some(r) => expr.push_str(&format!(".disk({r})")),
            None => comments.push(format!("its disk {id} was not imported: set `.disk(…)`")),
        }
    }
    if let Some(Value::String(p)) = o.props.get("path") {
        expr.push_str(&format!(".path({})", rust_str(p)));
    }
    Generated {
        type_path: "crate::disks::Mount",
        expr,
        comments,
    }
}

/// A disk of another provider: its variables are `disk_<name>` too.
pub(crate) static OTHER_DISK: KindSchema = KindSchema::new("other_disk", "other")
    .computed(&["id"])
    .codegen(disk_code);

/// A disk whose size is left to drift: its chain calls a `Resource` method.
pub(crate) static LOOSE_DISK: KindSchema = KindSchema::new("test_loose_disk", "test")
    .computed(&["id"])
    .codegen(loose_disk_code);

fn loose_disk_code(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut g = disk_code(o, name, names);
    g.expr.push_str(".ignore_changes(&[\"size_gb\"])");
    g
}

/// A kind without code generation.
pub(crate) static SNAPSHOT: KindSchema = KindSchema::new("test_snapshot", "test");

fn props(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn rustfmt_check(module: &str) {
    let mut child = match Command::new("rustfmt")
        .args(["--check", "--edition", "2021"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            eprintln!("SKIPPED the rustfmt check: no rustfmt");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(module.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rustfmt --check wants changes:\n{}\n---\n{module}",
        String::from_utf8_lossy(&out.stdout)
    );
}

async fn import(
    engine: &Engine,
    filter: &ImportFilter,
    formatting: Formatting,
) -> (String, usize, usize) {
    let mut writer =
        ModuleWriter::with_formatting(Vec::new(), "the test sandbox", formatting).unwrap();
    engine
        .import(&Default::default(), filter, &mut writer)
        .await
        .unwrap();
    let (bytes, counts) = writer.finish().unwrap();
    (
        String::from_utf8(bytes).unwrap(),
        counts.objects,
        counts.comments,
    )
}

/// Disks and mounts made by hand (a mount inserted before its disk, to see the order), a
/// snapshot (no code generation), and an object owned by a stack (not imported).
fn sandbox(dir: &std::path::Path) -> (Engine, Arc<SandboxProvider>, String) {
    let sandbox = Arc::new(SandboxProvider::open(dir, "test").unwrap());
    let disk_placeholder = "disk-later";
    let _ = disk_placeholder;
    let data = sandbox
        .insert_unowned(&DISK, "data volume", props(&[("size_gb", Value::Int(20))]))
        .unwrap();
    sandbox
        .insert_unowned(
            &MOUNT,
            "data",
            props(&[
                ("disk_id", Value::from(data.as_str())),
                ("path", Value::from("/srv/data")),
                (
                    "tags",
                    Value::Map(BTreeMap::from([("team".to_string(), Value::from("web"))])),
                ),
            ]),
        )
        .unwrap();
    // Two disks whose names sanitise to the same address name; one named like a keyword.
    sandbox
        .insert_unowned(&DISK, "data/volume", props(&[("size_gb", Value::Int(1))]))
        .unwrap();
    sandbox.insert_unowned(&DISK, "9-type", props(&[])).unwrap();
    sandbox
        .insert_unowned(
            &SNAPSHOT,
            "nightly",
            props(&[("disk_id", Value::from(data.as_str()))]),
        )
        .unwrap();
    let engine = Engine::new().with_provider_arc(sandbox.clone());
    (engine, sandbox, data)
}

#[tokio::test]
async fn the_module_declares_each_object_with_its_adoption_in_dependency_order() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _sandbox, data) = sandbox(dir.path());
    let (module, objects, comments) =
        import(&engine, &ImportFilter::all(), Formatting::detect()).await;
    assert_eq!((objects, comments), (4, 1), "{module}");
    assert!(module.starts_with("//! Objects that belong to no stack, imported by `infra import` from the test sandbox.\n"), "{module}");
    assert!(module.contains("\nuse infra::core::Stack;\n"), "{module}");
    assert!(
        module.contains("pub fn declare(stack: &mut Stack) {\n"),
        "{module}"
    );
    // Names: sanitised, unique by suffix, never a keyword or a leading digit.
    assert!(
        module
            .contains("let disk_data_volume = stack.add(Disk::new(\"data-volume\").size_gb(20));"),
        "{module}"
    );
    assert!(
        module.contains(
            "let disk_data_volume_2 = stack.add(Disk::new(\"data-volume-2\").size_gb(1));"
        ),
        "{module}"
    );
    assert!(
        module.contains("let disk_9_type = stack.add(Disk::new(\"9-type\"));"),
        "{module}"
    );
    assert!(
        module.contains(&format!("stack.adopt(&disk_data_volume, \"{data}\");")),
        "{module}"
    );
    // The mount refers to its disk by variable, after it; `use` once per type.
    let disk_at = module.find("let disk_data_volume =").unwrap();
    let mount_at = module.find("let mount_data = stack.add(").unwrap();
    assert!(disk_at < mount_at, "{module}");
    assert!(
        module.contains("Mount::new(\"data\")\n            .disk(&disk_data_volume)\n")
            || module.contains("Mount::new(\"data\").disk(&disk_data_volume)"),
        "{module}"
    );
    assert_eq!(
        module.matches("use crate::disks::Disk;").count(),
        1,
        "{module}"
    );
    // A kind without code generation is a comment, not dropped.
    assert!(
        module.contains("// not imported: test_snapshot snapshot-"),
        "{module}"
    );
    assert!(
        module.contains("(\"nightly\"): `infra` can't write kind"),
        "{module}"
    );
    assert!(
        module.ends_with("}\n\n// 4 objects declared, 1 listed as comments.\n"),
        "{module}"
    );
    rustfmt_check(&module);
    // Stable: the same input gives the same module.
    let (again, _, _) = import(&engine, &ImportFilter::all(), Formatting::detect()).await;
    assert_eq!(module, again);
}

#[tokio::test]
async fn the_builtin_layout_is_what_rustfmt_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, sandbox, _) = sandbox(dir.path());
    // A chain long enough to be broken one call per line.
    let disk = sandbox
        .insert_unowned(
            &DISK,
            "a-rather-long-disk-name-for-a-long-chain",
            props(&[("size_gb", Value::Int(1234567))]),
        )
        .unwrap();
    sandbox
        .insert_unowned(
            &MOUNT,
            "a-mount-with-a-long-name-too",
            props(&[
                ("disk_id", Value::from(disk.as_str())),
                (
                    "path",
                    Value::from("/srv/a/very/long/path/for/the/mount/point"),
                ),
            ]),
        )
        .unwrap();
    let (builtin, ..) = import(&engine, &ImportFilter::all(), Formatting::Builtin).await;
    assert!(
        builtin.contains("\n            .path(\"/srv/a/very/long/path/for/the/mount/point\"),\n"),
        "{builtin}"
    );
    rustfmt_check(&builtin);
    if let Formatting::Rustfmt(_) = Formatting::detect() {
        let (formatted, ..) = import(&engine, &ImportFilter::all(), Formatting::detect()).await;
        assert_eq!(builtin, formatted);
    }
}

#[tokio::test]
async fn filters_narrow_discovery_and_an_unknown_one_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _sandbox, _) = sandbox(dir.path());
    let mut by_name = ImportFilter::all();
    by_name.name_prefix = Some("data".into());
    let (module, objects, comments) = import(&engine, &by_name, Formatting::Builtin).await;
    assert_eq!((objects, comments), (3, 0), "{module}");
    let mut by_tag = ImportFilter::all();
    by_tag.tags.insert("team".into(), "web".into());
    let (module, objects, _) = import(&engine, &by_tag, Formatting::Builtin).await;
    assert_eq!(objects, 1, "{module}");
    // Its disk was not imported: the reference is left out, with a comment saying so.
    assert!(
        module.contains("was not imported: set `.disk(…)`"),
        "{module}"
    );
    let mut by_vpc = ImportFilter::all();
    by_vpc.vpc = Some("vpc-1".into());
    let mut writer = ModuleWriter::with_formatting(Vec::new(), "x", Formatting::Builtin).unwrap();
    let err = engine
        .import(&Default::default(), &by_vpc, &mut writer)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("provider `test`") && err.contains("(--vpc)"),
        "{err}"
    );
}

#[test]
fn inexpressible_objects_and_notes_are_comments_and_nothing_is_an_empty_declare() {
    let mut writer = ModuleWriter::with_formatting(Vec::new(), "x", Formatting::Builtin).unwrap();
    writer
        .found(Found::Inexpressible {
            what: "EC2 VPC endpoint".into(),
            id: "vpce-1".into(),
            reason: "no builder for VPC endpoints".into(),
        })
        .unwrap();
    let (bytes, counts) = writer.finish().unwrap();
    let module = String::from_utf8(bytes).unwrap();
    assert_eq!((counts.objects, counts.comments), (0, 1));
    assert!(
        module.contains(
            "    // not imported: EC2 VPC endpoint vpce-1: no builder for VPC endpoints\n"
        ),
        "{module}"
    );
    assert!(
        module.contains("    let _ = stack; // nothing was imported\n"),
        "{module}"
    );
    rustfmt_check(&module);

    let mut writer = ModuleWriter::with_formatting(Vec::new(), "x", Formatting::Builtin).unwrap();
    writer
        .found(Found::Object(Discovered {
            schema: &DISK,
            id: "disk-1".into(),
            name: "fn".into(),
            props: BTreeMap::new(),
            aliases: vec!["arn:disk/fn".into()],
            notes: vec!["its encryption key can't be read back".into()],
        }))
        .unwrap();
    assert_eq!(
        writer.names().var(DISK.kind, "arn:disk/fn"),
        Some("disk_fn")
    );
    let (bytes, _) = writer.finish().unwrap();
    let module = String::from_utf8(bytes).unwrap();
    assert!(
        module.contains("    // its encryption key can't be read back\n    use crate::disks::Disk;\n    let disk_fn = stack.add(Disk::new(\"fn\"));\n    stack.adopt(&disk_fn, \"disk-1\");\n"),
        "{module}"
    );
}

/// Thousands of objects stream through in chunks: every one is written, names stay unique,
/// and the chunked rustfmt output is the builtin layout (the figure is printed).
#[test]
fn thousands_of_objects_stream_in_chunks() {
    let n = 2_000;
    let run = |formatting: Formatting| {
        let started = std::time::Instant::now();
        let mut writer = ModuleWriter::with_formatting(Vec::new(), "x", formatting).unwrap();
        for i in 0..n {
            writer
                .found(Found::Object(Discovered {
                    schema: &DISK,
                    id: format!("disk-{i:05}"),
                    name: format!("disk {}", i % 100),
                    props: BTreeMap::from([("size_gb".to_string(), Value::Int(i))]),
                    aliases: Vec::new(),
                    notes: Vec::new(),
                }))
                .unwrap();
        }
        let (bytes, counts) = writer.finish().unwrap();
        (String::from_utf8(bytes).unwrap(), counts, started.elapsed())
    };
    let (builtin, counts, took) = run(Formatting::Builtin);
    eprintln!("{n} objects, builtin layout: {took:?}");
    assert_eq!(counts.objects, n as usize);
    assert_eq!(builtin.matches("stack.adopt(").count(), n as usize);
    assert!(
        builtin.contains("let disk_disk_99_20 = stack.add("),
        "names unique by suffix"
    );
    if let Formatting::Rustfmt(_) = Formatting::detect() {
        let (formatted, _, took) = run(Formatting::detect());
        eprintln!("{n} objects, rustfmt in chunks: {took:?}");
        assert_eq!(formatted, builtin);
        rustfmt_check(&formatted);
    }
}

/// Ids are unique within a kind only (an IAM role and an IAM group may both be `web`): the
/// names are kept by kind, so a reference gets the object of the kind it expects.
#[test]
fn names_are_kept_by_kind() {
    let mut names = ImportNames::new();
    names.insert("aws_iam_role", "web", "iam_role_web");
    names.insert("aws_iam_role", "arn:aws:iam::1:role/web", "iam_role_web");
    names.insert("aws_iam_group", "web", "iam_group_web");
    assert_eq!(names.var("aws_iam_role", "web"), Some("iam_role_web"));
    assert_eq!(
        names.reference("aws_iam_role", "arn:aws:iam::1:role/web"),
        Some("&iam_role_web".into())
    );
    assert_eq!(names.var("aws_iam_group", "web"), Some("iam_group_web"));
    assert_eq!(
        names.reference("aws_iam_group", "web"),
        Some("&iam_group_web".into())
    );
    assert_eq!(names.var("aws_iam_user", "web"), None);
}

/// Through the writer: two disks of two kinds share the id and the name `web`, and a mount
/// refers to the first kind's. The variables are unique across kinds (the second kind's gets
/// its provider as a suffix, whatever the order), the mount refers to the right disk, and the
/// module is valid Rust.
#[test]
fn the_same_id_in_two_kinds_gets_two_variables_and_the_right_reference() {
    let object = |schema: &'static KindSchema, id: &str, props: BTreeMap<String, Value>| {
        Found::Object(Discovered {
            schema,
            id: id.into(),
            name: "web".into(),
            props,
            aliases: Vec::new(),
            notes: Vec::new(),
        })
    };
    let write = |order: &[&'static KindSchema]| {
        let mut writer =
            ModuleWriter::with_formatting(Vec::new(), "x", Formatting::Builtin).unwrap();
        for schema in order {
            writer
                .found(object(schema, "web", BTreeMap::new()))
                .unwrap();
        }
        writer
            .found(object(
                &MOUNT,
                "m-1",
                props(&[("disk_id", Value::from("web"))]),
            ))
            .unwrap();
        let (bytes, counts) = writer.finish().unwrap();
        assert_eq!(counts.objects, 3);
        String::from_utf8(bytes).unwrap()
    };
    let module = write(&[&DISK, &OTHER_DISK]);
    for line in [
        "let disk_web = stack.add(Disk::new(\"web\"));",
        "stack.adopt(&disk_web, \"web\");",
        "stack.adopt(&disk_web_other, \"web\");",
        "Mount::new(\"web\").disk(&disk_web)",
    ] {
        assert!(module.contains(line), "{line} in:\n{module}");
    }
    rustfmt_check(&module);
    // The other order: the first kind's variable was taken by the second kind, which keeps
    // `disk_web`; the mount still refers to the first kind's disk.
    let module = write(&[&OTHER_DISK, &DISK]);
    assert!(
        module.contains("Mount::new(\"web\").disk(&disk_web_test)"),
        "{module}"
    );
    assert!(
        module.contains("stack.adopt(&disk_web, \"web\");"),
        "{module}"
    );
}

/// A chain calling a method of the `Resource` trait (`.ignore_changes(…)`) compiles only with
/// the trait in scope: the writer `use`s it once, before the first such chain, and not in a
/// module that doesn't need it.
#[test]
fn a_chain_with_a_resource_option_brings_the_trait_in_scope_once() {
    let disk = |schema: &'static KindSchema, id: &str| {
        Found::Object(Discovered {
            schema,
            id: id.into(),
            name: id.into(),
            props: BTreeMap::new(),
            aliases: Vec::new(),
            notes: Vec::new(),
        })
    };
    let mut writer = ModuleWriter::with_formatting(Vec::new(), "x", Formatting::Builtin).unwrap();
    for (schema, id) in [(&DISK, "a"), (&LOOSE_DISK, "b"), (&LOOSE_DISK, "c")] {
        writer.found(disk(schema, id)).unwrap();
    }
    let module = String::from_utf8(writer.finish().unwrap().0).unwrap();
    assert_eq!(
        module
            .matches("    use infra::core::dsl::Resource;\n")
            .count(),
        1,
        "{module}"
    );
    let (used, first) = (
        module.find("use infra::core::dsl::Resource;").unwrap(),
        module.find(".ignore_changes(").unwrap(),
    );
    assert!(
        module.find("Disk::new(\"a\")").unwrap() < used && used < first,
        "{module}"
    );
    rustfmt_check(&module);

    let mut writer = ModuleWriter::with_formatting(Vec::new(), "x", Formatting::Builtin).unwrap();
    writer.found(disk(&DISK, "a")).unwrap();
    let module = String::from_utf8(writer.finish().unwrap().0).unwrap();
    assert!(!module.contains("Resource"), "{module}");
}
