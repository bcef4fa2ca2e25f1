//! The controller on the real engine: the production stack's Swarm part deployed under a unique
//! stack name with its `controller` service running the image the project builds
//! (`infra::artifacts::controller_image`), `--only swarm`. Drift made by hand (a service scaled,
//! another deleted) is put back within two intervals; the controller's container killed, Swarm
//! restarts it and it repairs again, no lock left behind; an old controller (the same image with
//! the previous declaration's inputs) never reverts a newer deploy. The image is made of the
//! deploy program this test run built (`ControllerProgram::Prebuilt`, with the shared libraries
//! it links), not of the shipped static build, which would compile the dependency tree again.
//!
//! Needs the engine in swarm mode with both test images (`.ci/setup-swarm`); skips loudly, or
//! fails under `INFRA_REQUIRE_ENDPOINTS=1`. It takes about two minutes.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectServiceOptions, KillContainerOptionsBuilder,
    UpdateServiceOptionsBuilder,
};
use bollard::Docker;
use infra_test_support::{
    example_binary, say, show, skip_or_fail, swarm_missing, test_image, test_image_v2, unique,
};

/// The controller's interval in the `local` environment (examples/production/controller.rs).
const INTERVAL: Duration = Duration::from_secs(5);
/// Two intervals, with the loop's ±10 % jitter.
const TWO_INTERVALS: Duration = Duration::from_millis(11_000);

/// The deploy program as CI runs it: `--target live --only swarm` on stack `stack`, with the
/// controller's image and the test image `app_image` as inputs.
fn deploy(stack: &str, controller: &str, app_image: &str, args: &[&str]) -> Output {
    Command::new(example_binary("production"))
        .args(["--target", "live", "--only", "swarm", "--stack", stack])
        .args(["--lock-timeout", "60"])
        .args(args)
        .env("INFRA_CONTROLLER_IMAGE", controller)
        .env("INFRA_TEST_IMAGE", app_image)
        .env(
            "INFRA_AUDIT_LOG",
            std::env::temp_dir().join(format!("{stack}-audit.jsonl")),
        )
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env_remove("INFRA_STACK")
        .output()
        .unwrap()
}

fn docker_cli(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// A container's output so far (the controller logs on stderr).
fn logs_of(container: &str) -> String {
    let o = docker_cli(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The running container of `service`'s task, if there is one.
fn container_of(service: &str) -> Option<String> {
    let o = docker_cli(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .map(str::to_string)
}

/// Polls `check` every 250 ms until it gives `Some`, for at most `limit`; the value and when.
async fn within<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Removes whatever the test made, even when it fails: the old-controller container, the
/// stack (destroy), anything left with the stack's label, the lock, the named volumes.
struct Cleanup {
    stack: String,
    controller: String,
    app_image: String,
    old_controller: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &self.old_controller {
            docker_cli(&["rm", "-f", c]);
        }
        let destroy = deploy(
            &self.stack,
            &self.controller,
            &self.app_image,
            &["destroy", "--auto-approve"],
        );
        if !destroy.status.success() {
            say(&format!(
                "controller test cleanup: destroy failed: {}",
                show(&destroy)
            ));
        }
        let label = format!("label=infra.stack={}", self.stack);
        for kind in ["service", "secret", "config", "network"] {
            let ls = docker_cli(&[kind, "ls", "-q", "--filter", &label]);
            for id in String::from_utf8_lossy(&ls.stdout).split_whitespace() {
                docker_cli(&[kind, "rm", id]);
            }
        }
        docker_cli(&["config", "rm", &format!("infra-lock_{}", self.stack)]);
        for volume in ["es-data", "log-shipper-data"] {
            let volume = format!("{}_{volume}", self.stack);
            // removal waits for the tasks' containers to go: bounded
            for _ in 0..100 {
                let ls = docker_cli(&[
                    "volume",
                    "ls",
                    "-q",
                    "--filter",
                    &format!("name=^{volume}$"),
                ]);
                if ls.stdout.is_empty() || docker_cli(&["volume", "rm", &volume]).status.success() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let _ =
            std::fs::remove_file(std::env::temp_dir().join(format!("{}-audit.jsonl", self.stack)));
    }
}

fn replicas(service: &str) -> Option<i64> {
    let o = docker_cli(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ]);
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// `docker service scale`, through the API.
async fn scale(docker: &Docker, service: &str, n: i64) {
    let s = docker
        .inspect_service(service, None::<InspectServiceOptions>)
        .await
        .unwrap();
    let mut spec = s.spec.unwrap();
    spec.mode
        .as_mut()
        .unwrap()
        .replicated
        .as_mut()
        .unwrap()
        .replicas = Some(n);
    let version = s.version.unwrap().index.unwrap() as i32;
    docker
        .update_service(
            service,
            spec,
            UpdateServiceOptionsBuilder::new().version(version).build(),
            None,
        )
        .await
        .unwrap();
}

fn label_of(service: &str) -> String {
    let o = docker_cli(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{index .Spec.Labels \"infra-declaration\"}}",
    ]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn image_of(service: &str) -> String {
    let o = docker_cli(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn lock_held(stack: &str) -> bool {
    docker_cli(&["config", "inspect", &format!("infra-lock_{stack}")])
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_repairs_drift_survives_a_kill_and_never_reverts_a_newer_deploy() {
    let test =
        "controller::the_controller_repairs_drift_survives_a_kill_and_never_reverts_a_newer_deploy";
    if let Some(why) = swarm_missing() {
        skip_or_fail(test, &why);
        return;
    }
    let (Some(v1), Some(v2)) = (test_image(), test_image_v2()) else {
        skip_or_fail(
            test,
            "the second test image (INFRA_TEST_IMAGE_V2) is missing",
        );
        return;
    };
    let started = Instant::now();
    // the deploy program this test run already built, with its shared libraries: the static
    // build (`controller_image()`, what is shipped) compiles the whole tree a second time
    let program = infra::artifacts::ControllerProgram::Prebuilt(example_binary("production"));
    let image = infra::artifacts::controller_image_of(program)
        .await
        .expect("the controller's image");
    say(&format!(
        "controller image {image}: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let docker = Docker::connect_with_defaults().unwrap();
    let stack = unique("ctl").replace('-', "");
    let mut cleanup = Cleanup {
        stack: stack.clone(),
        controller: image.clone(),
        app_image: v1.clone(),
        old_controller: None,
    };
    let svc = |name: &str| format!("{stack}_{name}");
    let t0 = Instant::now();

    // CI deploys D1 (the Swarm part, the controller included).
    let apply = deploy(&stack, &image, &v1, &["apply", "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    let applied_in = t0.elapsed();
    let d1 = label_of(&svc("controller"));
    assert!(
        d1.starts_with("sha256:"),
        "the controller records the declaration: {d1:?}"
    );
    assert_eq!(image_of(&svc("controller")), image);

    // The controller runs and finds nothing to do.
    let (first, _) = within(
        Duration::from_secs(90),
        "the controller's first quiet run",
        || {
            let c = container_of(&svc("controller"))?;
            logs_of(&c).contains(": no changes").then_some(c)
        },
    )
    .await;

    // Drift by hand: the app scaled (2 → 4), Kibana deleted.
    scale(&docker, &svc("app"), 4).await;
    docker.delete_service(&svc("kibana")).await.unwrap();
    let (_, repaired) = within(
        TWO_INTERVALS + Duration::from_secs(20),
        "the drift repaired",
        || {
            let kibana = docker_cli(&["service", "inspect", &svc("kibana")])
                .status
                .success();
            let app = replicas(&svc("app"));
            (kibana && app == Some(2)).then_some(())
        },
    )
    .await;
    say(&format!(
        "controller: drift (scale + delete) put back {:.1} s after it was made (interval {} s)",
        repaired.as_secs_f64(),
        INTERVAL.as_secs()
    ));
    assert!(
        repaired <= TWO_INTERVALS,
        "both put back within two intervals: took {repaired:?}"
    );
    // The repair's audit lines (the controller's audit log is its stderr), its lock released.
    let (_, _) = within(Duration::from_secs(60), "the repair's audit lines", || {
        let logs = logs_of(&first);
        (logs.contains("\"address\":\"swarm_service.kibana\"")
            && logs.contains("\"address\":\"swarm_service.app\""))
        .then_some(())
    })
    .await;
    let (_, _) = within(Duration::from_secs(60), "the lock released", || {
        (!lock_held(&stack)).then_some(())
    })
    .await;

    // Kill the controller's container (SIGKILL, between runs): Swarm starts another, which
    // resumes and repairs again, taking and releasing the lock as usual.
    docker
        .kill_container(
            &first,
            Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()),
        )
        .await
        .unwrap();
    let (second, restarted) = within(Duration::from_secs(60), "a new controller task", || {
        container_of(&svc("controller")).filter(|c| *c != first)
    })
    .await;
    let (_, resumed) = within(
        Duration::from_secs(60),
        "the new controller's first run",
        || logs_of(&second).contains("watch #1: ").then_some(()),
    )
    .await;
    let resumed = restarted + resumed;
    scale(&docker, &svc("app"), 3).await;
    let (_, repaired_again) = within(
        TWO_INTERVALS + Duration::from_secs(20),
        "the second repair",
        || (replicas(&svc("app")) == Some(2)).then_some(()),
    )
    .await;
    say(&format!(
        "controller: killed; new task running {:.1} s later, first run done {:.1} s after the kill; a new scale put back in {:.1} s",
        restarted.as_secs_f64(),
        resumed.as_secs_f64(),
        repaired_again.as_secs_f64()
    ));
    assert!(repaired_again <= TWO_INTERVALS, "took {repaired_again:?}");
    let (_, _) = within(Duration::from_secs(60), "the lock released", || {
        (!lock_held(&stack)).then_some(())
    })
    .await;
    let logs = logs_of(&second);
    assert!(
        !logs.contains("is locked by"),
        "the restarted controller met no stale lock:\n{logs}"
    );

    // An old controller: the same image with D1's inputs, still running while CI deploys D2
    // (a new app image). It must apply nothing: the recorded declaration is no longer its own.
    let old = format!("{stack}-old-controller");
    let env = [
        "INFRA_TARGET=live".to_string(),
        "INFRA_ENV=local".to_string(),
        format!("INFRA_STACK={stack}"),
        format!("INFRA_CONTROLLER_IMAGE={image}"),
        format!("INFRA_TEST_IMAGE={v1}"),
        "INFRA_LOCK_TIMEOUT=60".to_string(),
        "INFRA_AUDIT_LOG=/dev/stderr".to_string(),
    ];
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        cmd: Some(
            [
                "--only",
                "swarm",
                "watch",
                "--interval",
                "2",
                "--controller",
                "controller",
            ]
            .map(String::from)
            .to_vec(),
        ),
        env: Some(env.to_vec()),
        labels: Some(HashMap::from([("infra.test".to_string(), stack.clone())])),
        host_config: Some(HostConfig {
            binds: Some(vec!["/var/run/docker.sock:/var/run/docker.sock".to_string()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&old).build()),
            body,
        )
        .await
        .unwrap();
    cleanup.old_controller = Some(old.clone());
    docker
        .start_container(
            &old,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    let (_, _) = within(
        Duration::from_secs(60),
        "the old controller's first run",
        || logs_of(&old).contains("watch #1: no changes").then_some(()),
    )
    .await;

    let deployed = Instant::now();
    let apply = deploy(&stack, &image, &v2, &["apply", "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    cleanup.app_image = v2.clone();
    let applied_d2_in = deployed.elapsed();
    let d2 = label_of(&svc("controller"));
    assert_ne!(d2, d1, "the new declaration is recorded");
    // The D1 controller of the service was replaced by the deploy: stopped by SIGTERM between
    // runs, it ended cleanly (exit 0), holding no lock.
    let (_, _) = within(
        Duration::from_secs(30),
        "the replaced controller's clean stop",
        || {
            let code = docker_cli(&[
                "inspect",
                &second,
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
            ]);
            let code = String::from_utf8_lossy(&code.stdout).trim().to_string();
            (code == "exited 0" && logs_of(&second).contains("watch: stopping (SIGTERM"))
                .then_some(())
        },
    )
    .await;
    let runs_before = logs_of(&old).matches("watch #").count();
    // Two of the old controller's intervals (2 s) and more: at least two runs, none applied.
    let (_, _) = within(
        Duration::from_secs(30),
        "two runs of the old controller",
        || {
            let logs = logs_of(&old);
            let skipped = logs
                .matches(&format!("was deployed from declaration {d2}"))
                .count();
            (skipped >= 2 && logs.matches("watch #").count() >= runs_before + 2).then_some(())
        },
    )
    .await;
    let logs = logs_of(&old);
    for name in ["app", "elasticsearch", "kibana", "log-shipper"] {
        assert_eq!(image_of(&svc(name)), v2, "{name} keeps D2's image:\n{logs}");
    }
    assert_eq!(label_of(&svc("controller")), d2, "{logs}");
    assert!(
        !logs.contains("\"status\":\"succeeded\""),
        "the old controller changed nothing:\n{logs}"
    );
    let line = logs
        .lines()
        .find(|l| l.contains("not converging") && l.starts_with("watch #"))
        .unwrap_or_default()
        .to_string();
    say(&format!(
        "controller: old controller during D2 ({:.1} s apply): {line}",
        applied_d2_in.as_secs_f64()
    ));
    // The new controller (D2) runs and converges D2.
    let (_, _) = within(
        Duration::from_secs(60),
        "the D2 controller's first run",
        || {
            let c = container_of(&svc("controller"))?;
            logs_of(&c).contains(": no changes").then_some(())
        },
    )
    .await;
    assert!(!lock_held(&stack), "no lock is left");
    say(&format!(
        "controller: D1 applied in {:.1} s; whole test {:.1} s before cleanup",
        applied_in.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ));
    drop(cleanup);
    let left = docker_cli(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=infra.stack={stack}"),
    ]);
    assert!(left.stdout.is_empty(), "no service of the stack is left");
}
