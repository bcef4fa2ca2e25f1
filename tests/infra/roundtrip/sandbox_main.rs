//! The round-trip fixture's program on the sandbox (copied into the fixture crate as
//! `src/main.rs`): `import FILE`, `plan` (JSON), `adopt`, `destroy`, through the library API
//! (`Engine::import`, `Engine::adopt`), with the fixture's own kinds on a sandbox named `demo`
//! in `$FIXTURE_SANDBOX`.

mod disks;
mod imported;

use std::process::ExitCode;

use infra::core::engine::Engine;
use infra::core::import::{ImportFilter, ModuleWriter};
use infra::core::plan::PlanOptions;
use infra::core::reconcile::NoObserver;
use infra::core::render;
use infra::core::sandbox::SandboxProvider;
use infra::core::Stack;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::env::var("FIXTURE_SANDBOX").expect("FIXTURE_SANDBOX");
    let sandbox = SandboxProvider::open(&dir, "demo")
        .expect("the sandbox")
        .serving(vec![&disks::DISK, &disks::MOUNT]);
    let engine = Engine::new().with_provider(sandbox);
    let mut stack = Stack::new("roundtrip");
    imported::declare(&mut stack);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let result: Result<(), String> = rt.block_on(async {
        let destroy = args.first().map(String::as_str) == Some("destroy");
        let opts = PlanOptions {
            destroy,
            ..PlanOptions::default()
        };
        match args.first().map(String::as_str) {
            Some("import") => {
                let file = std::fs::File::create(&args[1]).map_err(|e| e.to_string())?;
                let mut writer =
                    ModuleWriter::new(file, "the fixture's sandbox").map_err(|e| e.to_string())?;
                engine
                    .import(&Default::default(), &ImportFilter::all(), &mut writer)
                    .await
                    .map_err(|e| e.to_string())?;
                let (_, counts) = writer.finish().map_err(|e| e.to_string())?;
                eprintln!(
                    "Imported {} objects ({} listed as comments).",
                    counts.objects, counts.comments
                );
                Ok(())
            }
            Some("plan") => {
                let p = engine
                    .plan(&stack, &opts)
                    .await
                    .map_err(|e| e.to_string())?;
                print!("{}", render::plan_json(&p.plan));
                Ok(())
            }
            Some("adopt") | Some("destroy") => {
                let p = engine
                    .plan(&stack, &opts)
                    .await
                    .map_err(|e| e.to_string())?;
                let report = if destroy {
                    engine.apply(&p, &NoObserver).await
                } else {
                    engine.adopt(&p, &NoObserver).await
                }
                .map_err(|e| e.to_string())?;
                print!("{}", render::report_text(&report));
                if report.is_success() {
                    Ok(())
                } else {
                    Err("the apply failed".into())
                }
            }
            other => Err(format!("unknown command {other:?}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
