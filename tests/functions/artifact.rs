//! What is in the zips: one executable `bootstrap`, a static x86-64 ELF.

use object::elf;
use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _};
use object::{Architecture, Object as _};

use crate::built;

/// Amazon Linux 2023's glibc: no `GLIBC_` symbol version above it may be needed.
const AL2023_GLIBC: (u32, u32) = (2, 34);

/// What an executable asks of the system's dynamic linker.
#[derive(Debug)]
struct Linkage {
    interpreter: Option<String>,
    needed: Vec<String>,
    /// Every `GLIBC_x.y` version the executable needs, as (x, y).
    glibc_versions: Vec<(u32, u32)>,
}

fn linkage(data: &[u8]) -> Linkage {
    let file = ElfFile64::<object::Endianness>::parse(data).expect("a 64-bit ELF");
    let endian = file.endian();
    let mut interpreter = None;
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) == elf::PT_INTERP {
            let bytes = ph.data(endian, data).unwrap();
            interpreter = Some(
                String::from_utf8_lossy(bytes)
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
    }
    let sections = file.elf_section_table();
    let mut needed = Vec::new();
    if let Some((dynamic, link)) = sections.dynamic(endian, data).unwrap() {
        let strings = sections.strings(endian, data, link).unwrap();
        for d in dynamic {
            if d.tag32(endian) == Some(elf::DT_NEEDED) {
                needed
                    .push(String::from_utf8_lossy(d.string(endian, strings).unwrap()).into_owned());
            }
        }
    }
    let mut glibc_versions = Vec::new();
    if let Some((mut verneeds, link)) = sections.gnu_verneed(endian, data).unwrap() {
        let strings = sections.strings(endian, data, link).unwrap();
        while let Some((_, mut auxes)) = verneeds.next().unwrap() {
            while let Some(aux) = auxes.next().unwrap() {
                let name = String::from_utf8_lossy(aux.name(endian, strings).unwrap()).into_owned();
                if let Some(v) = name.strip_prefix("GLIBC_") {
                    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                    glibc_versions.push((parts.next().unwrap_or(0), parts.next().unwrap_or(0)));
                }
            }
        }
    }
    glibc_versions.sort();
    glibc_versions.dedup();
    Linkage {
        interpreter,
        needed,
        glibc_versions,
    }
}

#[test]
fn the_checks_see_a_dynamic_glibc_executable() {
    // this test's own executable is linked against this machine's glibc
    let data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let l = linkage(&data);
    assert!(
        l.interpreter
            .as_deref()
            .is_some_and(|i| i.contains("ld-linux")),
        "{l:?}"
    );
    assert!(l.needed.iter().any(|n| n == "libc.so.6"), "{l:?}");
    assert!(!l.glibc_versions.is_empty(), "{l:?}");
    let newest = l.glibc_versions.last().unwrap();
    infra_test_support::say(&format!(
        "this test binary (dynamic) needs GLIBC_{}.{} at most; the static bootstrap needs none",
        newest.0, newest.1
    ));
}

fn check_artifact(bin: &str) {
    let zip_path = built(bin);
    assert_eq!(zip_path, infra::artifacts::lambda_zip_path(bin));
    assert!(
        zip_path.ends_with(format!("target/lambda/{bin}/bootstrap.zip")),
        "{zip_path:?}"
    );
    let bytes = std::fs::read(&zip_path).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    assert_eq!(archive.len(), 1, "{bin}: one entry");
    let mut entry = archive.by_index(0).unwrap();
    assert_eq!(entry.name(), "bootstrap");
    assert!(entry.is_file());
    assert_eq!(
        entry.unix_mode().map(|m| m & 0o777),
        Some(0o755),
        "{bin}: executable"
    );
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
    drop(entry);

    let file = object::File::parse(&*data).expect("an object file");
    assert_eq!(file.format(), object::BinaryFormat::Elf);
    assert_eq!(
        file.architecture(),
        Architecture::X86_64,
        "{bin}: built for Lambda's x86_64"
    );
    assert!(file.is_64() && file.is_little_endian());
    assert_ne!(file.entry(), 0, "{bin}: has an entry point");
    let header = ElfFile64::<object::Endianness>::parse(&*data).unwrap();
    let e_type = header.elf_header().e_type(header.endian());
    // rustc links a static glibc executable as static-pie (ET_DYN without an interpreter)
    assert!(
        e_type == elf::ET_EXEC || e_type == elf::ET_DYN,
        "{bin}: e_type {e_type}"
    );

    let l = linkage(&data);
    assert_eq!(l.interpreter, None, "{bin}: static, no dynamic linker");
    assert!(
        l.needed.is_empty(),
        "{bin}: needs no shared library: {:?}",
        l.needed
    );
    assert!(
        l.glibc_versions.is_empty(),
        "{bin}: needs no glibc symbol version: {:?}",
        l.glibc_versions
    );
    // what the rule is for: nothing above Amazon Linux 2023's glibc (vacuous for a static binary)
    assert!(l.glibc_versions.iter().all(|v| *v <= AL2023_GLIBC));

    // the zip is a pure function of the executable: re-packing gives the same bytes
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("exe");
    std::fs::write(&exe, &data).unwrap();
    let again = dir.path().join("again.zip");
    infra::artifacts::write_bootstrap_zip(&exe, &again).unwrap();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        bytes,
        "{bin}: the zip is deterministic"
    );
    infra_test_support::say(&format!(
        "{bin}: bootstrap {} bytes, zip {} bytes, static (no interpreter, no DT_NEEDED, no GLIBC_ versions)",
        data.len(),
        bytes.len()
    ));
}

#[test]
fn analytics_ingest_is_a_static_x86_64_bootstrap() {
    check_artifact("analytics-ingest");
}

#[test]
fn node_events_is_a_static_x86_64_bootstrap() {
    check_artifact("node-events");
}
