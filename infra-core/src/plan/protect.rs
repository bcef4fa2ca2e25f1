//! Protection: a protected resource that would be replaced or destroyed blocks the plan unless
//! the options allow it.

use super::{Action, Change, PlanOptions};
use crate::dsl::Address;
use crate::graph::Graph;

/// One error per protected resource that the changes replace or destroy without leave.
pub(super) fn protection_errors(
    graph: &Graph,
    changes: &[Change],
    opts: &PlanOptions,
) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.protected && !allowed(opts, &c.address))
        .filter_map(|c| {
            let verb = match c.action {
                a if a.is_replace() => "replaced",
                Action::Delete => "destroyed",
                _ => return None,
            };
            let declared = graph.get(&c.address).is_some_and(|s| s.options.protect);
            Some(protect_error(&c.address, verb, declared))
        })
        .collect()
}

fn allowed(opts: &PlanOptions, address: &Address) -> bool {
    opts.allow_destroy_all || opts.allow_destroy.contains(&address.to_string())
}

/// `declared`: the declaration says `.protect()`; otherwise the protection comes from the
/// object's `infra:protect` mark, left by an apply while it was declared protected.
fn protect_error(address: &Address, verb: &str, declared: bool) -> String {
    if declared {
        format!(
            "{address} is protected and would be {verb}; remove `.protect()` from its declaration, \
             or re-run with `--allow-destroy {address}` if this is intended"
        )
    } else {
        format!(
            "{address} is protected and would be {verb}: its object is marked `infra:protect` \
             (it was applied while declared with `.protect()`, and the mark stays until the \
             object goes); re-run with `--allow-destroy {address}` if this is intended"
        )
    }
}
