//! Service discovery: a service reaches another of its stack by the other's declared name
//! (`search`, not Swarm's `<stack>_search`) over TCP, as with `docker stack deploy`.
//!
//! This machine's engine has no IPVS: a service's virtual IP resolves but never answers. So the
//! server the client connects to by name uses the `dnsrr` endpoint mode, where the name resolves
//! to the tasks' own addresses; a second server keeps the default `vip` mode and is reached
//! through `tasks.<name>` (its name itself resolves to the unanswering VIP, which the test only
//! looks up). The client is busybox: `nslookup` resolves, then `nc` connects to the address it
//! printed (busybox `wget` segfaults on a name lookup in the static image; `nc` to an address
//! works). Its loop is bounded (60 tries, 1 s apart) and the test reads its log for at most
//! 90 s.

use std::time::{Duration, Instant};

use infra_core::dsl::Address;
use infra_core::plan::Action;
use infra_core::render::plan_text;
use infra_core::Stack;
use infra_swarm::{EndpointMode, SwarmNetwork, SwarmService};

use crate::common::*;

/// The port both servers answer on, with one line (`pong-<server>`) per connection.
const PORT: &str = "9200";

fn server(name: &str) -> SwarmService {
    quick_service(name, &image()).args([
        "nc",
        "-ll",
        "-p",
        PORT,
        "-e",
        "echo",
        &format!("pong-{name}"),
    ])
}

/// For each of `names`, 60 times a second apart: resolve it and, when it resolved, send a
/// line to the last address over TCP, printing `try <i> <name> <address> <answer>` (or
/// `unresolved`); then sleep. `connect: false` only resolves (a VIP, which never answers here).
fn client_script(names: &[(&str, bool)]) -> String {
    let mut body = String::new();
    for (n, connect) in names {
        let reach = if *connect {
            format!("r=$(echo ping | nc -w 2 \"$ip\" {PORT}); echo \"try $i {n} $ip ${{r:-no-answer}}\"")
        } else {
            format!("echo \"try $i {n} $ip resolved\"")
        };
        body.push_str(&format!(
            "ip=$(nslookup {n} 2>/dev/null | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -1); \
             if [ -n \"$ip\" ]; then {reach}; else echo \"try $i {n} unresolved\"; fi; "
        ));
    }
    format!("i=0; while [ $i -lt 60 ]; do i=$((i+1)); {body}sleep 1; done; exec sleep 100000")
}

fn stack(name: &str, with_aliases: bool) -> Stack {
    let mut s = Stack::new(name);
    let net = s.add(SwarmNetwork::new("back"));
    s.add(
        server("search")
            .network(&net)
            .alias("es")
            .endpoint_mode(EndpointMode::Dnsrr),
    );
    s.add(server("kv").network(&net));
    s.add(quick_service("client", &image()).network(&net).args([
        "sh",
        "-c",
        &client_script(&[
            ("search", true),
            ("es", true),
            ("tasks.kv", true),
            ("kv", false),
        ]),
    ]));
    if !with_aliases {
        // As the provider deployed services before they had aliases.
        for svc in ["search", "kv", "client"] {
            let address: Address = format!("swarm_service.{svc}").parse().unwrap();
            s.get_mut(&address).unwrap().props.remove("aliases");
        }
    }
    s
}

/// The log of the service's one running task, read until `done` holds for its lines (every
/// 500 ms, at most 90 s); the lines as last read.
fn client_log(service: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let task = wait_running(service, 1);
        assert_eq!(task.len(), 1, "{service}: {task:?}");
        let container = docker(&[
            "inspect",
            &task[0].id,
            "--format",
            "{{.Status.ContainerStatus.ContainerID}}",
        ]);
        let log = lines(&docker(&["logs", &container]));
        if done(&log) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The address of the service's running task on its network.
fn task_address(service: &str) -> String {
    let task = wait_running(service, 1);
    assert_eq!(task.len(), 1, "{service}: {task:?}");
    let cidr = docker(&[
        "inspect",
        &task[0].id,
        "--format",
        "{{range .NetworksAttachments}}{{range .Addresses}}{{.}}{{end}}{{end}}",
    ]);
    cidr.split('/').next().unwrap_or_default().to_string()
}

/// The answer lines (`try … <name> <address> <answer>`) for `name`.
fn answers<'a>(log: &'a [String], name: &str) -> Vec<&'a str> {
    log.iter()
        .map(String::as_str)
        .filter(|l| l.split(' ').nth(2) == Some(name))
        .collect()
}

fn reached(log: &[String], name: &str, address: &str, server: &str) -> bool {
    let want = format!("{name} {address} pong-{server}");
    answers(log, name).iter().any(|l| l.ends_with(&want))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_reaches_another_by_its_declared_name_over_tcp() {
    let Some(p) = provider("service_names").await else {
        return;
    };
    let name = unique("dns");
    let _guard = Cleanup::new(&name);
    let engine = engine(&p);
    let client = format!("{name}_client");

    // A deployment from before aliases: the short names don't resolve, only `tasks.<stack>_kv`
    // would; `tasks.kv` doesn't either.
    let old = stack(&name, false);
    converge(&engine, &old).await;
    let search_ip = task_address(&format!("{name}_search"));
    let log = client_log(&client, |l| {
        ["search", "es", "tasks.kv"]
            .iter()
            .all(|n| answers(l, n).len() >= 2)
    });
    for n in ["search", "es", "tasks.kv", "kv"] {
        let a = answers(&log, n);
        assert!(
            !a.is_empty() && a.iter().all(|l| l.ends_with(" unresolved")),
            "without aliases `{n}` must not resolve:\n{}",
            log.join("\n")
        );
    }

    // The plan updates all three: the aliases are a task-template change, and says so.
    let s = stack(&name, true);
    let planned = plan(&engine, &s).await;
    let text = plan_text(&planned.plan);
    for svc in ["search", "kv", "client"] {
        let c = planned
            .plan
            .change(&format!("swarm_service.{svc}"))
            .unwrap();
        assert_eq!(c.action, Action::Update, "{text}");
        let f = c.fields.iter().find(|f| f.name == "aliases").unwrap();
        assert!(
            f.effect
                .as_deref()
                .is_some_and(|e| e.starts_with("task-template change")),
            "{text}"
        );
        assert!(c.reason.contains("task-template change"), "{}", c.reason);
    }
    assert!(
        text.contains(
            "+ aliases = [\"search\", \"es\"] # task-template change: the tasks are replaced (rolling update)"
        ),
        "{text}"
    );
    converge(&engine, &s).await;

    // The client, replaced by the update, resolves the server's short name and its alias to
    // the server task's own address (dnsrr) and gets an answer over TCP from there; the
    // vip-mode server answers on the address of `tasks.kv`, and its name resolves (to the
    // VIP, which this engine can't serve).
    let search_ip_now = task_address(&format!("{name}_search"));
    let kv_ip = task_address(&format!("{name}_kv"));
    let log = client_log(&client, |l| {
        reached(l, "search", &search_ip_now, "search")
            && reached(l, "es", &search_ip_now, "search")
            && reached(l, "tasks.kv", &kv_ip, "kv")
            && answers(l, "kv").iter().any(|a| a.ends_with(" resolved"))
    });
    let all = log.join("\n");
    assert!(
        reached(&log, "search", &search_ip_now, "search"),
        "`search` did not resolve to {search_ip_now} (was {search_ip}) and answer:\n{all}"
    );
    assert!(
        reached(&log, "es", &search_ip_now, "search"),
        "the alias `es` did not reach the search service:\n{all}"
    );
    assert!(
        reached(&log, "tasks.kv", &kv_ip, "kv"),
        "`tasks.kv` did not reach the kv service at {kv_ip}:\n{all}"
    );
    let kv = answers(&log, "kv");
    assert!(
        kv.iter().any(|a| a.ends_with(" resolved")) && !kv.iter().any(|a| a.contains(&kv_ip)),
        "`kv` must resolve to its VIP, not its task:\n{all}"
    );
    assert_no_changes(&engine, &s, "after the aliases").await;
}
