//! Reading a stack: every kind's owned objects, one label-filtered list call per kind, made
//! concurrently; two objects claiming one address are settled here.

use infra_core::dsl::Address;
use infra_core::provider::{Observed, ProviderError};
use infra_core::registry::Registry;
use infra_core::retry::{self, RetryPolicy};

use super::connect::Client;
use super::kinds::{Found, SwarmKind};

/// Attempts of a read on retryable errors.
const READ_ATTEMPTS: u32 = 4;

/// Everything `stack` owns in the swarm. A read changes nothing, so a transient failure (a
/// reset connection, a manager without a leader for a moment) is retried here rather than
/// failing the whole plan.
pub(crate) async fn read_stack(
    client: &Client,
    kinds: &Registry<dyn SwarmKind>,
    stack: &str,
) -> Result<Vec<Observed>, ProviderError> {
    retry::retry(
        &RetryPolicy::calls().with_max_attempts(READ_ATTEMPTS),
        "reading the stack's swarm objects",
        || read_once(client, kinds, stack),
    )
    .await
}

async fn read_once(
    client: &Client,
    kinds: &Registry<dyn SwarmKind>,
    stack: &str,
) -> Result<Vec<Observed>, ProviderError> {
    let reads = futures::future::join_all(kinds.iter().map(|k| k.read(client, stack))).await;
    let mut found = Vec::new();
    for r in reads {
        found.extend(r?);
    }
    Ok(settle_duplicates(found))
}

/// When several objects claim one address, the newest is the resource; the others (the old
/// half of an interrupted replacement) get `<address>~<id>` so the plan deletes them.
fn settle_duplicates(mut found: Vec<Found>) -> Vec<Observed> {
    found.sort_by(|(a, ta), (b, tb)| {
        a.address
            .cmp(&b.address)
            .then_with(|| sortable_time(tb).cmp(&sortable_time(ta)))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut out: Vec<Observed> = Vec::with_capacity(found.len());
    let mut primary: Option<Address> = None;
    for (mut o, _) in found {
        if primary.as_ref() == Some(&o.address) {
            let short: String = o.id.chars().take(12).collect();
            o.address = Address::new(o.address.kind(), format!("{}~{short}", o.address.name()));
        } else {
            primary = Some(o.address.clone());
        }
        out.push(o);
    }
    out
}

/// Docker's RFC 3339 times trim trailing zeros from the fraction; pad it so that the strings
/// sort in time order.
fn sortable_time(t: &str) -> String {
    match t.split_once('.') {
        Some((head, rest)) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            format!("{head}.{digits:0<9}")
        }
        None => format!("{}.000000000", t.trim_end_matches('Z')),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn obs(address: &str, id: &str) -> Observed {
        Observed {
            address: address.parse().unwrap(),
            id: id.into(),
            props: BTreeMap::new().into(),
            protect: false,
            declared: None,
        }
    }

    #[test]
    fn the_newest_object_of_an_address_wins_and_older_ones_are_deposed() {
        let out = settle_duplicates(vec![
            (
                obs("swarm_secret.token", "old000000000000"),
                "2026-11-27T06:22:11.3995Z".into(),
            ),
            (
                obs("swarm_secret.token", "new000000000000"),
                "2026-11-27T06:22:11.39951Z".into(),
            ),
            (
                obs("swarm_service.app", "svc"),
                "2026-11-27T06:00:00Z".into(),
            ),
        ]);
        let names: Vec<(String, String)> = out
            .iter()
            .map(|o| (o.address.to_string(), o.id.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("swarm_secret.token".into(), "new000000000000".into()),
                (
                    "swarm_secret.token~old000000000".into(),
                    "old000000000000".into()
                ),
                ("swarm_service.app".into(), "svc".into()),
            ]
        );
    }
}
