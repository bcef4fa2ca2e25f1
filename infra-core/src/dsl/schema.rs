//! What a kind declares about itself.

use crate::validate::{Problem, ValidationContext};

use super::ResourceSpec;

/// What a kind declares about itself: which provider serves it, which fields can't change in
/// place, which are computed by the provider, which are secret, and how to validate it.
///
/// Built in a `static` with the `const` methods:
/// ```
/// # use infra_core::dsl::KindSchema;
/// static VPC: KindSchema = KindSchema::new("aws_vpc", "aws")
///     .force_new(&["cidr_block"])
///     .computed(&["id", "arn"]);
/// ```
#[derive(Debug)]
pub struct KindSchema {
    /// The kind's name, the first half of every address of this kind.
    pub kind: &'static str,
    /// The provider that serves this kind (`aws`, `swarm`, …).
    pub provider: &'static str,
    /// Fields whose change forces a replacement.
    pub force_new: &'static [&'static str],
    /// Outputs the provider computes (every kind also has `id`).
    pub computed: &'static [&'static str],
    /// Computed outputs that change whenever the resource is updated (e.g. a version number);
    /// references to them are unknown in a plan that updates the resource.
    pub changes_on_update: &'static [&'static str],
    /// Fields whose values are secret: digested in plans, never printed.
    pub sensitive: &'static [&'static str],
    /// List fields compared as sets (order doesn't matter: rules, subnet ids, …).
    pub unordered: &'static [&'static str],
    /// Per-kind validation; may look at other resources through the context.
    pub validate: fn(&ResourceSpec, &ValidationContext<'_>) -> Vec<Problem>,
    /// `true` for read-only data sources (looked up, never created or deleted).
    pub data_source: bool,
    /// Fields whose in-place update disrupts the running object (a Swarm service's task
    /// template: its tasks are replaced), and the words a plan shows for it.
    pub disruptive: (&'static [&'static str], &'static str),
    /// Whether a declared move ([`Stack::moved`](super::Stack::moved)) keeps the object: its
    /// provider re-owns it under the new address in place. Otherwise a move replaces it, for
    /// the reason given.
    pub moves: MoveSupport,
    /// How an object of this kind found by import is written as Rust (issue 14); `None`: the
    /// kind can't be imported, and discovery lists its objects as comments.
    pub codegen: Option<crate::import::Codegen>,
}

/// What a declared move does to an object of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveSupport {
    /// The provider rewrites the object's ownership (`infra:id`) in place: the object is kept.
    InPlace,
    /// The object can't be re-owned under another address: a move replaces it, because of
    /// the reason (`"its Swarm name is <stack>_<name>, and Swarm can't rename a service"`).
    Replaces(&'static str),
}

fn no_validation(_: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    Vec::new()
}

impl KindSchema {
    /// A kind with no force-new, computed (besides `id`) or sensitive fields and no validation.
    pub const fn new(kind: &'static str, provider: &'static str) -> Self {
        KindSchema {
            kind,
            provider,
            force_new: &[],
            computed: &[],
            changes_on_update: &[],
            sensitive: &[],
            unordered: &[],
            validate: no_validation,
            data_source: false,
            disruptive: (&[], ""),
            moves: MoveSupport::Replaces(
                "its provider can't re-own an object of this kind under another address",
            ),
            codegen: None,
        }
    }
    /// Declares the fields whose change forces a replacement.
    pub const fn force_new(mut self, fields: &'static [&'static str]) -> Self {
        self.force_new = fields;
        self
    }
    /// Declares the provider-computed outputs.
    pub const fn computed(mut self, fields: &'static [&'static str]) -> Self {
        self.computed = fields;
        self
    }
    /// Declares the outputs that change on every update.
    pub const fn changes_on_update(mut self, fields: &'static [&'static str]) -> Self {
        self.changes_on_update = fields;
        self
    }
    /// Declares the secret fields.
    pub const fn sensitive(mut self, fields: &'static [&'static str]) -> Self {
        self.sensitive = fields;
        self
    }
    /// Declares the list fields compared as sets.
    pub const fn unordered(mut self, fields: &'static [&'static str]) -> Self {
        self.unordered = fields;
        self
    }
    /// Sets the validation function.
    pub const fn validate(
        mut self,
        f: fn(&ResourceSpec, &ValidationContext<'_>) -> Vec<Problem>,
    ) -> Self {
        self.validate = f;
        self
    }
    /// Declares the fields whose in-place update disrupts the running object, and what a plan
    /// says about it (`"restarts the service's tasks"`): shown beside each such field of an
    /// update and in the change's reason.
    pub const fn disruptive(
        mut self,
        fields: &'static [&'static str],
        effect: &'static str,
    ) -> Self {
        self.disruptive = (fields, effect);
        self
    }
    /// Declares that the provider re-owns an object of this kind under a new address in place
    /// ([`Provider::move_to`](crate::provider::Provider::move_to)): a declared move keeps it.
    pub const fn movable(mut self) -> Self {
        self.moves = MoveSupport::InPlace;
        self
    }
    /// Declares why a move can't keep an object of this kind (its name derives from its
    /// address, and the API can't rename it): a plan shows the reason beside the replacement.
    pub const fn move_replaces(mut self, why: &'static str) -> Self {
        self.moves = MoveSupport::Replaces(why);
        self
    }
    /// Sets how an imported object of this kind is written as Rust
    /// ([`crate::import`]).
    pub const fn codegen(mut self, f: crate::import::Codegen) -> Self {
        self.codegen = Some(f);
        self
    }
    /// Marks the kind as a read-only data source.
    pub const fn data_source(mut self) -> Self {
        self.data_source = true;
        self
    }

    /// True when `field` forces replacement.
    pub fn is_force_new(&self, field: &str) -> bool {
        self.force_new.contains(&field)
    }
    /// True when the list `field` is compared as a set.
    pub fn is_unordered(&self, field: &str) -> bool {
        self.unordered.contains(&field)
    }
    /// True when `field` is secret.
    pub fn is_sensitive(&self, field: &str) -> bool {
        self.sensitive.contains(&field)
    }
    /// What an in-place update of `field` does beyond the field itself, if it is disruptive.
    pub fn disruption(&self, field: &str) -> Option<&'static str> {
        self.disruptive
            .0
            .contains(&field)
            .then_some(self.disruptive.1)
    }
    /// True when `output` is `id` or a declared computed output.
    pub fn has_output(&self, output: &str) -> bool {
        output == "id" || self.computed.contains(&output)
    }
}
