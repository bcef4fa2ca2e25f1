//! Bad numeric flags: `--concurrency`, `--lock-timeout`, `--swarm-wait` and `watch --interval`
//! (and the environment variables behind them) with zero where it means nothing, negative,
//! fractional, empty, out-of-range, beyond `u64` or non-numeric values. Each run of the deploy
//! program (`--target live`, a command that would contact both endpoints) ends with exactly one
//! line naming the flag and its range, exit 1, no panic, and no connection to the AWS endpoint,
//! the instance metadata endpoint or Docker (tripwires count them). A control run with a good
//! value does connect, so the zeros are measurements.

use std::process::{Command, Output};

use crate::support::{clean_env, example_binary, say, show, Tripwire};

/// A flag, where it goes on the command line, and its range as the message states it.
struct Flag {
    flag: &'static str,
    env: Option<&'static str>,
    /// Arguments before the flag (a subcommand for `--interval`), and after its value.
    before: &'static [&'static str],
    after: &'static [&'static str],
    what: &'static str,
    min: u64,
    max: u64,
}

const FLAGS: [Flag; 5] = [
    Flag {
        flag: "--concurrency",
        env: Some("INFRA_CONCURRENCY"),
        before: &[],
        after: &["apply", "--auto-approve"],
        what: "a whole number",
        min: 1,
        max: 1000,
    },
    Flag {
        flag: "--lock-timeout",
        env: Some("INFRA_LOCK_TIMEOUT"),
        before: &[],
        after: &["apply", "--auto-approve"],
        what: "a whole number of seconds",
        min: 0,
        max: 86_400,
    },
    Flag {
        flag: "--swarm-wait",
        env: Some("INFRA_SWARM_WAIT"),
        before: &[],
        after: &["apply", "--auto-approve"],
        what: "a whole number of seconds",
        min: 0,
        max: 86_400,
    },
    Flag {
        flag: "--interval",
        env: None,
        before: &["watch", "--iterations", "1"],
        after: &[],
        what: "a whole number of seconds",
        min: 1,
        max: 86_400,
    },
    Flag {
        flag: "--give-up-after",
        env: None,
        before: &["watch", "--iterations", "1"],
        after: &[],
        what: "a whole number of runs",
        min: 0,
        max: 10_000,
    },
];

/// The tripwires every run is pointed at.
struct Endpoints {
    aws: Tripwire,
    imds: Tripwire,
    docker: Tripwire,
}

impl Endpoints {
    fn hits(&self) -> (usize, usize, usize) {
        (self.aws.hits(), self.imds.hits(), self.docker.hits())
    }
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new(example_binary());
        clean_env(&mut c, dir.path())
            .args(["--target", "live"])
            .args(args)
            .env("AWS_ENDPOINT_URL", self.aws.url())
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.url())
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("DOCKER_HOST", self.docker.tcp())
            .env("INFRA_TEST_IMAGE", "sha256:aaaa")
            .envs(env.iter().copied());
        let o = c.output().unwrap();
        assert!(
            !dir.path().join("sandbox").exists() && !dir.path().join("audit.jsonl").exists(),
            "{args:?}: nothing is opened or written:\n{}",
            show(&o)
        );
        o
    }
}

/// Exit 1, nothing on stdout, and stderr is exactly `expected` on one line.
fn assert_one_line(what: &str, o: &Output, expected: &str) {
    assert_eq!(o.status.code(), Some(1), "{what}:\n{}", show(o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("{expected}\n"),
        "{what}: exactly one line:\n{}",
        show(o)
    );
    assert!(
        o.stdout.is_empty(),
        "{what}: nothing on stdout:\n{}",
        show(o)
    );
}

#[test]
fn every_bad_numeric_flag_is_one_line_exit_1_and_contacts_nothing() {
    let endpoints = Endpoints {
        aws: Tripwire::start(),
        imds: Tripwire::start(),
        docker: Tripwire::start(),
    };
    let mut runs = 0;
    for f in &FLAGS {
        let mut bad = vec![
            "-1".to_string(),
            "-0.5".to_string(),
            "1.5".to_string(),
            "abc".to_string(),
            "10s".to_string(),
            "".to_string(),
            (f.max + 1).to_string(),
            "18446744073709551615".to_string(),
            "99999999999999999999".to_string(),
        ];
        if f.min > 0 {
            bad.push("0".to_string());
        }
        for value in &bad {
            // `--flag value`, and `--flag=value` (the only way to give an empty value).
            let spaced = [f.flag, value.as_str()];
            let joined = [format!("{}={value}", f.flag)];
            let forms: Vec<Vec<&str>> = if value.is_empty() {
                vec![vec![joined[0].as_str()]]
            } else {
                vec![spaced.to_vec(), vec![joined[0].as_str()]]
            };
            for form in forms {
                let args: Vec<&str> = f
                    .before
                    .iter()
                    .copied()
                    .chain(form.iter().copied())
                    .chain(f.after.iter().copied())
                    .collect();
                let o = endpoints.run(&args, &[]);
                let expected = format!(
                    "Error: {} must be {} from {} to {}, got `{value}`",
                    f.flag, f.what, f.min, f.max
                );
                assert_one_line(&format!("{args:?}"), &o, &expected);
                assert_eq!(endpoints.hits(), (0, 0, 0), "{args:?}: contacted");
                runs += 1;
            }
        }
        // The environment variable behind the flag: named as such.
        if let Some(env) = f.env {
            let o = endpoints.run(f.after, &[(env, "-3")]);
            let expected = format!(
                "Error: {env} ({}) must be {} from {} to {}, got `-3`",
                f.flag, f.what, f.min, f.max
            );
            assert_one_line(env, &o, &expected);
            assert_eq!(endpoints.hits(), (0, 0, 0), "{env}: contacted");
            runs += 1;
        }
    }

    // Control: good values at the edges of the ranges parse, and the run does reach AWS.
    let o = endpoints.run(
        &[
            "--concurrency",
            "1000",
            "--lock-timeout",
            "0",
            "--swarm-wait",
            "86400",
            "apply",
            "--auto-approve",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        endpoints.aws.hits() > 0,
        "the control run reaches the AWS endpoint:\n{}",
        show(&o)
    );
    say(&format!(
        "bad flags: {runs} runs with bad numeric values, each one line and exit 1, 0 connections; the control run connected {} times",
        endpoints.aws.hits()
    ));
}

/// Other malformed arguments keep clap's message (the problem, a tip, `--help`) but exit 1, not
/// clap's 2, which `--detailed-exitcode` reserves for "changes pending".
#[test]
fn other_malformed_arguments_exit_1_not_2() {
    let endpoints = Endpoints {
        aws: Tripwire::start(),
        imds: Tripwire::start(),
        docker: Tripwire::start(),
    };
    for args in [
        &["plan", "--detailed-exitcode", "--no-such-flag"][..],
        &["--only", "gcp", "plan", "--detailed-exitcode"],
        &["--target", "moon", "plan"],
        &["watch", "--iterations", "x"],
    ] {
        let o = endpoints.run(args, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}:\n{}", show(&o));
        assert!(
            err.starts_with("error: ") && err.contains("try '--help'"),
            "{args:?}: clap's message:\n{}",
            show(&o)
        );
        assert!(!err.contains("panicked"), "{}", show(&o));
    }
    assert_eq!(endpoints.hits(), (0, 0, 0), "contacted");
    let help = endpoints.run(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0), "{}", show(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--lock-timeout <LOCK_TIMEOUT>"));
}
