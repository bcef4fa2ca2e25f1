//! The Lambda functions' artifacts (`infra::artifacts`, crate `infra-functions`), built the way
//! `cargo run --example build-functions` builds them:
//!
//! * [`artifact`]: each zip holds one entry, `bootstrap`, mode 0755, an x86-64 ELF executable
//!   that needs no interpreter, no shared library and no glibc symbol version (static), so
//!   nothing in it can be newer than Amazon Linux 2023's glibc 2.34; the same checks run on this
//!   test's own (dynamic) executable find its interpreter, libc and `GLIBC_` versions, so they
//!   can fail. Re-packing gives the same bytes.
//! * [`runtime`]: the built binaries run behind a Lambda Runtime API written here
//!   ([`runtime::RuntimeApi`]), with a stand-in Elasticsearch reached by the name `localhost`
//!   (resolved by the functions' own resolver: a static glibc can't use NSS). `analytics-ingest`
//!   answers an HTTP API v2 event with 202 and the store receives the document; a bad event gets
//!   400 and the store nothing; `node-events` records an Auto Scaling launch and reports a
//!   malformed one through `/invocation/{id}/error`; without `ES_URL` the process stops with a
//!   clear message. The logs hold neither the password in `ES_URL` nor event contents.
//!
//! The first run builds the functions (release profile, a few minutes on 2 cores); afterwards
//! cargo finds them up to date.

mod artifact;
mod runtime;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The zip of `bin`, built once per test process through the facade.
pub(crate) fn built(bin: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    static BUILT: OnceLock<Mutex<std::collections::HashMap<String, PathBuf>>> = OnceLock::new();
    let _one_build_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let map = BUILT.get_or_init(Default::default);
    if let Some(path) = map.lock().unwrap().get(bin) {
        return path.clone();
    }
    let started = std::time::Instant::now();
    let zip = infra::artifacts::lambda_zip(bin).unwrap_or_else(|e| panic!("{e}"));
    infra_test_support::say(&format!(
        "built {bin}: {} ({} bytes) in {:.1} s",
        zip.display(),
        std::fs::metadata(&zip).unwrap().len(),
        started.elapsed().as_secs_f64()
    ));
    map.lock().unwrap().insert(bin.to_string(), zip.clone());
    zip
}

/// The `bootstrap` executable of a zip, extracted with its mode into `dir`.
pub(crate) fn extract_bootstrap(zip: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut entry = archive.by_name("bootstrap").unwrap();
    let mode = entry.unix_mode().expect("bootstrap has a unix mode");
    let path = dir.join("bootstrap");
    let mut out = std::fs::File::create(&path).unwrap();
    std::io::copy(&mut entry, &mut out).unwrap();
    drop(out);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777)).unwrap();
    path
}

/// AWS's event samples, kept with the functions.
pub(crate) fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/infra-functions/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}
