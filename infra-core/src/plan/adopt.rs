//! Declared adoptions ([`Stack::adopt`](crate::dsl::Stack::adopt)) in a plan: the object that
//! belongs to no stack, read by the engine under the declared address, is diffed like any other;
//! its change is marked as an adoption (the stack's ownership written, nothing else), or an
//! update that also adopts. An adoption whose object would have to be replaced is refused: the
//! object was made outside `infra`, and adopting it must never destroy it.

use super::{Action, Change, ObservedState};

/// Marks a declared resource's change as an adoption when its object was read for one: an
/// adoption alone when the fields match, an update that also adopts otherwise.
pub(super) fn mark_adopted(change: &mut Change, observed: &ObservedState) {
    let Some(id) = observed.adopted.get(&change.address) else {
        return;
    };
    change.adopted = Some(id.clone());
    match change.action {
        Action::NoOp => {
            change.action = Action::Adopt;
            change.reason = format!(
                "adopts {id}, which belongs to no stack: the stack's ownership is written on \
                 it, nothing else changes"
            );
        }
        _ => change.reason = format!("adopts {id}, which belongs to no stack; {}", change.reason),
    }
}

/// One error per adoption the plan would replace: the declaration differs from the object in
/// fields that can't change in place, and adopting must not destroy what was made by hand.
pub(super) fn adoption_errors(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.adopted.is_some() && c.action.is_replace())
        .map(|c| {
            let fields: Vec<String> = c.replace_because.iter().map(|f| format!("`{f}`")).collect();
            format!(
                "{} adopts {}, but its declaration differs in {} which can't change in place: \
                 adopting would replace (destroy) the object. Declare the object as it is (as \
                 `import` writes it), adopt it, then change it",
                c.address,
                c.adopted.as_deref().unwrap_or("-"),
                if fields.is_empty() {
                    "fields".to_string()
                } else {
                    fields.join(", ")
                }
            )
        })
        .collect()
}
