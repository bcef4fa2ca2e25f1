//! Saved plans: a plan written to a file together with what it was computed from, applied later
//! exactly as reviewed, or refused.
//!
//! A [`SavedPlan`] holds, besides the plan itself:
//!
//! * the **declaration** it came from: its [digest](crate::declaration::digest), plus a digest of
//!   every declared field of every resource (to name what changed when the digest differs);
//! * the **objects the plan read**, per phase: each object's address, id, protection and a digest
//!   of every field (the normalised declared fields and the computed outputs the plan compared);
//! * the **targets**: each provider's [identity](crate::provider::Provider::target) (the AWS
//!   account and region or endpoint, the swarm's id, the sandbox's file);
//! * the **tool version**, the format version, and a checksum of the whole document.
//!
//! Applying it ([`Engine::replan_saved`](crate::engine::Engine::replan_saved)) re-plans from the
//! declaration given now and what the providers hold now, and goes ahead only when the
//! declaration, every object read and every target are the ones recorded, so the new plan is
//! the saved one, operation for operation. Anything else is a [`Refusal`] naming what differs
//! (the object and the field); applying the same file twice refuses the second time, because the
//! objects it created or changed no longer match what it read.
//!
//! **No secret in clear.** Values are never stored, only digests; the plan's own secrets are
//! already [`Value::Sensitive`](crate::value::Value::Sensitive) digests. The values an apply
//! sends come from the declaration at apply time, and it must match the recorded digests.
//!
//! The format is JSON, versioned ([`SAVED_PLAN_VERSION`]), with a JSON Schema
//! ([`saved_plan_schema`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ObservedState, Plan, PlanOptions};
use crate::dsl::{ResourceSpec, Stack};
use crate::value::digest_of;

/// The `format` field of every saved plan.
pub const SAVED_PLAN_FORMAT: &str = "infra-saved-plan";
/// The version of the saved-plan format this build reads and writes.
pub const SAVED_PLAN_VERSION: u32 = 1;
/// The version of the tool that writes and applies saved plans (the workspace's version).
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The key under which a resource's options (protection, create-before-destroy, ignored
/// fields, explicit dependencies, policy suppressions, annotations) are digested among its
/// fields.
pub const OPTIONS_FIELD: &str = "(options)";

/// A saved plan. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    /// Always [`SAVED_PLAN_FORMAT`].
    pub format: String,
    /// [`SAVED_PLAN_VERSION`].
    pub format_version: u32,
    /// The version of the tool that made it ([`TOOL_VERSION`]); only the same version applies it.
    pub tool_version: String,
    /// The stack.
    pub stack: String,
    /// What the run that made it was given besides the declaration (the deploy program records
    /// its environment and target): an apply given something else is refused, naming it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// The declaration it was computed from.
    pub declaration: DeclarationRecord,
    /// The plans, in the order they are applied (a live deploy plans AWS, then Swarm).
    pub phases: Vec<SavedPhase>,
    /// `sha256:` and 64 hex digits over the document without this field (keys sorted, no
    /// whitespace): an edited or damaged file is refused.
    pub checksum: String,
}

/// The declaration a saved plan was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclarationRecord {
    /// [`crate::declaration::digest`] of the stack.
    pub digest: String,
    /// Per resource address, a digest of each declared field (and of its options under
    /// [`OPTIONS_FIELD`]).
    pub resources: BTreeMap<String, BTreeMap<String, String>>,
}

/// One plan of a saved plan, with what it read and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedPhase {
    /// The providers it covers.
    pub providers: Vec<String>,
    /// Each provider's target identity when the plan was made (`null`: the provider can't tell).
    pub targets: BTreeMap<String, Option<String>>,
    /// Protected resources the plan may delete or replace (`--allow-destroy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_destroy: Vec<String>,
    /// Every protected resource may go (`destroy --allow-destroy-all`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_destroy_all: bool,
    /// Every object the plan read (the stack's objects and the data sources it looked up).
    pub reads: Vec<ReadRecord>,
    /// The plan, as `plan --json` prints it.
    pub plan: Plan,
}

/// One object a plan read, as digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRecord {
    /// Its address.
    pub address: String,
    /// The provider that returned it (`null` for a data source's lookup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider's id.
    pub id: String,
    /// Its protection tag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protect: bool,
    /// A digest of each field's value (`sha256:` and 16 hex digits).
    pub fields: BTreeMap<String, String>,
}

/// Why a saved plan is not applied. Its `Display` is one sentence naming what differs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The file is not a saved plan (not JSON, cut short, another document).
    #[error("it is not a saved plan: {0}")]
    NotASavedPlan(String),
    /// Another version of the format.
    #[error("it has saved-plan format version {found} (written by infra {tool}); this program (infra {TOOL_VERSION}) reads version {SAVED_PLAN_VERSION}")]
    FormatVersion {
        /// The file's version.
        found: String,
        /// The tool that wrote it, as the file says.
        tool: String,
    },
    /// The checksum doesn't match the content.
    #[error("its content does not match its checksum: the file was edited or damaged after `plan --out` wrote it")]
    Edited,
    /// Another stack's plan.
    #[error("it is a plan of stack \"{plan}\", and this is stack \"{this}\"")]
    OtherStack {
        /// The stack of the plan.
        plan: String,
        /// The stack given now.
        this: String,
    },
    /// Another tool version made it.
    #[error("it was made by infra {plan}, and this is infra {TOOL_VERSION}")]
    ToolVersion {
        /// The version that made it.
        plan: String,
    },
    /// The run was given something else (an environment, a target).
    #[error("it was made with {key} {}, and this run has {key} {}", shown(.plan), shown(.this))]
    Context {
        /// What differs (`--env`).
        key: String,
        /// The plan's value.
        plan: Option<String>,
        /// This run's value.
        this: Option<String>,
    },
    /// The declaration differs.
    #[error("the declaration differs from the one it was made from: {what}")]
    Declaration {
        /// What differs, naming the resource and the field.
        what: String,
    },
    /// A provider's target differs.
    #[error("provider `{provider}` now targets {}, and the plan was made against {}", shown(.now), shown(.plan))]
    Target {
        /// The provider.
        provider: String,
        /// The target when the plan was made.
        plan: Option<String>,
        /// The target now.
        now: Option<String>,
    },
    /// The objects differ from what the plan read.
    #[error("{what}{}{}", more_text(.more), applied_text(.applied))]
    Objects {
        /// The first difference, naming the object and the field.
        what: String,
        /// How many other objects differ.
        more: usize,
        /// The stack now matches its declaration (the plan was applied already).
        applied: bool,
    },
    /// The plan made now is not the saved one (what the checks above cannot explain).
    #[error("the plan made now differs from the saved one: {0}")]
    Plan(String),
}

fn shown(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("`{v}`"),
        None => "(unknown)".into(),
    }
}

fn applied_text(applied: &bool) -> &'static str {
    if *applied {
        "; the stack already matches its declaration: this plan, or another run, has been applied, and there is nothing left for it to do"
    } else {
        ""
    }
}

fn more_text(more: &usize) -> String {
    match *more {
        0 => String::new(),
        1 => " (and 1 other object differs)".into(),
        n => format!(" (and {n} other objects differ)"),
    }
}

/// The JSON Schema of a saved plan file.
pub fn saved_plan_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SavedPlan)).unwrap_or_default()
}

/// A field's digest, salted with where it is, so that equal values in two places differ and a
/// short value can't be looked up in a table of common digests.
fn field_digest(address: &str, field: &str, value: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut salted = format!("{address}\0{field}\0").into_bytes();
    salted.extend(bytes);
    digest_of(&salted)
}

fn declared_fields(r: &ResourceSpec) -> BTreeMap<String, String> {
    let address = r.address.to_string();
    let mut fields: BTreeMap<String, String> = r
        .props
        .iter()
        .filter(|(k, _)| !r.options.ignore_changes.contains(*k))
        .map(|(k, v)| (k.clone(), field_digest(&address, k, &v.to_json())))
        .collect();
    let annotations: serde_json::Map<String, serde_json::Value> = r
        .options
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    let options = json!({
        "protect": r.options.protect,
        "create_before_destroy": r.options.create_before_destroy,
        "ignore_changes": r.options.ignore_changes,
        "depends_on": r.options.depends_on.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "suppress": r.options.suppress,
        "annotations": annotations,
    });
    fields.insert(
        OPTIONS_FIELD.into(),
        field_digest(&address, OPTIONS_FIELD, &options),
    );
    fields
}

impl DeclarationRecord {
    /// The record of a stack's declaration.
    pub fn of(stack: &Stack) -> Self {
        DeclarationRecord {
            digest: crate::declaration::digest(stack),
            resources: stack
                .resources()
                .iter()
                .map(|r| (r.address.to_string(), declared_fields(r)))
                .collect(),
        }
    }

    /// `Ok` when `now` is the same declaration; else the differences in words.
    fn compare(&self, now: &DeclarationRecord) -> Result<(), String> {
        if self.digest == now.digest {
            return Ok(());
        }
        let mut out = Vec::new();
        for (address, fields) in &self.resources {
            match now.resources.get(address) {
                None => out.push(format!("{address} was declared and no longer is")),
                Some(current) => {
                    let changed = changed_keys(fields, current);
                    if !changed.is_empty() {
                        out.push(format!(
                            "{address}: {}",
                            fields_text(&changed, "declared differently")
                        ));
                    }
                }
            }
        }
        for address in now.resources.keys() {
            if !self.resources.contains_key(address) {
                out.push(format!("{address} is declared now and was not"));
            }
        }
        Err(match out.len() {
            0 => format!("its digest is {} and was {}", now.digest, self.digest),
            1 => out.remove(0),
            n => format!("{} (and {} other resource(s) differ)", out.remove(0), n - 1),
        })
    }
}

/// The keys whose digests differ, or that one side lacks.
fn changed_keys(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn fields_text(fields: &[String], how: &str) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    match quoted.as_slice() {
        [one] => format!("field {one} is {how}"),
        many => format!("fields {} are {how}", many.join(", ")),
    }
}

impl ReadRecord {
    fn of(observed: &ObservedState) -> Vec<ReadRecord> {
        observed
            .resources
            .iter()
            .map(|(address, o)| {
                let address = address.to_string();
                ReadRecord {
                    fields: o
                        .props
                        .iter()
                        .map(|(k, v)| (k.clone(), field_digest(&address, k, &v.to_json())))
                        .collect(),
                    provider: observed.provider_of.get(&o.address).cloned(),
                    id: o.id.clone(),
                    protect: o.protect,
                    address,
                }
            })
            .collect()
    }
}

impl SavedPhase {
    /// The record of one plan: the plan, what it read, the targets, and the options it was made
    /// with.
    pub fn new(
        plan: &Plan,
        observed: &ObservedState,
        targets: BTreeMap<String, Option<String>>,
        opts: &PlanOptions,
    ) -> Self {
        SavedPhase {
            providers: plan.providers.clone(),
            targets,
            allow_destroy: opts.allow_destroy.iter().cloned().collect(),
            allow_destroy_all: opts.allow_destroy_all,
            reads: ReadRecord::of(observed),
            plan: plan.clone(),
        }
    }

    /// The options to plan it again with.
    pub fn options(&self) -> PlanOptions {
        PlanOptions {
            destroy: self.plan.destroy,
            only: self.providers.iter().cloned().collect(),
            allow_destroy: self.allow_destroy.iter().cloned().collect(),
            allow_destroy_all: self.allow_destroy_all,
        }
    }

    /// Checks the targets now against those recorded.
    pub fn check_targets(&self, now: &BTreeMap<String, Option<String>>) -> Result<(), Refusal> {
        for provider in &self.providers {
            let plan = self.targets.get(provider).cloned().flatten();
            let current = now.get(provider).cloned().flatten();
            if plan != current {
                return Err(Refusal::Target {
                    provider: provider.clone(),
                    plan,
                    now: current,
                });
            }
        }
        Ok(())
    }

    /// Checks a plan made now (from the same declaration, against the same targets) against
    /// this one: first what it read, object by object and field by field, then the plan itself.
    pub fn check_replan(&self, plan: &Plan, observed: &ObservedState) -> Result<(), Refusal> {
        let now: BTreeMap<String, ReadRecord> = ReadRecord::of(observed)
            .into_iter()
            .map(|r| (r.address.clone(), r))
            .collect();
        let then: BTreeMap<&String, &ReadRecord> =
            self.reads.iter().map(|r| (&r.address, r)).collect();
        let mut differences = Vec::new();
        for (address, old) in &then {
            let what = match now.get(*address) {
                None => Some(format!(
                    "{address} ({}) is gone since the plan read it",
                    old.id
                )),
                Some(new) if new.id != old.id => Some(format!(
                    "{address} was replaced since the plan read it: its id is now {}, and was {}",
                    new.id, old.id
                )),
                Some(new) => {
                    let mut changed = changed_keys(&old.fields, &new.fields);
                    if new.protect != old.protect {
                        changed.push("infra:protect".into());
                    }
                    (!changed.is_empty()).then(|| {
                        format!(
                            "{address} ({}) changed since the plan read it: its {}",
                            old.id,
                            fields_text(&changed, "not what the plan read")
                        )
                    })
                }
            };
            differences.extend(what);
        }
        for (address, new) in &now {
            if !then.contains_key(address) {
                differences.push(format!(
                    "{address} ({}) exists now and did not when the plan read the stack's objects",
                    new.id
                ));
            }
        }
        if !differences.is_empty() {
            let more = differences.len() - 1;
            return Err(Refusal::Objects {
                what: differences.remove(0),
                more,
                applied: plan.is_empty() && !self.plan.is_empty(),
            });
        }
        compare_plans(&self.plan, plan).map_err(Refusal::Plan)
    }
}

/// The plans' operations compared (their read statistics aside, which vary between reads).
fn compare_plans(saved: &Plan, now: &Plan) -> Result<(), String> {
    let strip = |p: &Plan| {
        let mut p = p.clone();
        p.reads.clear();
        serde_json::to_value(&p).unwrap_or_default()
    };
    let (a, b) = (strip(saved), strip(now));
    if a == b {
        return Ok(());
    }
    for change in &saved.changes {
        match now.changes.iter().find(|c| c.address == change.address) {
            None => return Err(format!("it has no change for {}", change.address)),
            Some(c) if serde_json::to_value(c).ok() != serde_json::to_value(change).ok() => {
                return Err(format!(
                    "{} would be {:?} now, and the saved plan has {:?}",
                    change.address, c.action, change.action
                ))
            }
            _ => {}
        }
    }
    if let Some(c) = now
        .changes
        .iter()
        .find(|c| !saved.changes.iter().any(|s| s.address == c.address))
    {
        return Err(format!(
            "it has a change for {} that the saved plan has not",
            c.address
        ));
    }
    Err("its errors or policy findings differ".into())
}

fn canonical_checksum(doc: &serde_json::Value) -> String {
    let mut doc = doc.clone();
    if let Some(o) = doc.as_object_mut() {
        o.remove("checksum");
    }
    let bytes = serde_json::to_vec(&sorted(doc)).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
}

/// The value with every object's keys in order, whatever map serde_json was built with.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(o) => {
            let ordered: BTreeMap<String, serde_json::Value> =
                o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(ordered.into_iter().collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

impl SavedPlan {
    /// A saved plan of `stack` from its phases, made by a run given `context`.
    pub fn new(stack: &Stack, context: BTreeMap<String, String>, phases: Vec<SavedPhase>) -> Self {
        let mut saved = SavedPlan {
            format: SAVED_PLAN_FORMAT.into(),
            format_version: SAVED_PLAN_VERSION,
            tool_version: TOOL_VERSION.into(),
            stack: stack.name().to_string(),
            context,
            declaration: DeclarationRecord::of(stack),
            phases,
            checksum: String::new(),
        };
        saved.checksum = canonical_checksum(&serde_json::to_value(&saved).unwrap_or_default());
        saved
    }

    /// The file's content: pretty JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads a saved plan, refusing anything but an intact file of this format version.
    pub fn from_json(text: &str) -> Result<SavedPlan, Refusal> {
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            Refusal::NotASavedPlan(match e.classify() {
                serde_json::error::Category::Eof => {
                    format!("the file ends early ({e}): it was cut short (truncated), or is empty")
                }
                _ => format!("the file is not valid JSON ({e})"),
            })
        })?;
        let field = |name: &str| doc.get(name);
        if field("format").and_then(|f| f.as_str()) != Some(SAVED_PLAN_FORMAT) {
            return Err(Refusal::NotASavedPlan(format!(
                "it has no `\"format\": \"{SAVED_PLAN_FORMAT}\"` (`plan --json` prints a plan to read; `plan --out FILE` saves one to apply)"
            )));
        }
        match field("format_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(SAVED_PLAN_VERSION) => {}
            other => {
                return Err(Refusal::FormatVersion {
                    found: other.map_or_else(
                        || field("format_version").map_or("(none)".into(), |v| v.to_string()),
                        |v| v.to_string(),
                    ),
                    tool: field("tool_version")
                        .and_then(|v| v.as_str())
                        .unwrap_or("(unknown)")
                        .to_string(),
                })
            }
        }
        if field("checksum").and_then(|c| c.as_str()) != Some(canonical_checksum(&doc).as_str()) {
            return Err(Refusal::Edited);
        }
        serde_json::from_value(doc).map_err(|e| {
            Refusal::NotASavedPlan(format!("its content does not follow the format ({e})"))
        })
    }

    /// Checks what can be checked without contacting anything: the stack, the tool version,
    /// the run's context and the declaration.
    pub fn check_declaration(
        &self,
        stack: &Stack,
        context: &BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        if self.tool_version != TOOL_VERSION {
            return Err(Refusal::ToolVersion {
                plan: self.tool_version.clone(),
            });
        }
        let keys: BTreeSet<&String> = self.context.keys().chain(context.keys()).collect();
        for key in keys {
            let (plan, this) = (self.context.get(key), context.get(key));
            if plan != this {
                return Err(Refusal::Context {
                    key: key.clone(),
                    plan: plan.cloned(),
                    this: this.cloned(),
                });
            }
        }
        // After the context: another environment is also another stack name, and the flag
        // says more than the name.
        if self.stack != stack.name() {
            return Err(Refusal::OtherStack {
                plan: self.stack.clone(),
                this: stack.name().to_string(),
            });
        }
        self.declaration
            .compare(&DeclarationRecord::of(stack))
            .map_err(|what| Refusal::Declaration { what })
    }

    /// The providers of every phase, in order.
    pub fn providers(&self) -> Vec<String> {
        self.phases
            .iter()
            .flat_map(|p| p.providers.iter().cloned())
            .collect()
    }
}

impl fmt::Display for SavedPlan {
    /// A one-line summary: stack, phases and their counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "saved plan of stack \"{}\"", self.stack)?;
        for p in &self.phases {
            let s = &p.plan.summary;
            write!(
                f,
                "; {}: {} to add, {} to change, {} to destroy",
                p.providers.join("+"),
                s.add,
                s.change,
                s.destroy
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_ignores_layout_and_key_order_but_not_content() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "s", "checksum": "x"}"#)
                .unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":"s","checksum":"other","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(canonical_checksum(&a), canonical_checksum(&b));
        let c: serde_json::Value =
            serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":3}]}"#).unwrap();
        assert_ne!(canonical_checksum(&a), canonical_checksum(&c));
    }

    #[test]
    fn field_digests_are_salted_by_place_and_name_no_value() {
        let v = serde_json::json!("hunter2");
        let d = field_digest("test_host.db", "password", &v);
        assert!(d.starts_with("sha256:") && d.len() == 7 + 16, "{d}");
        assert!(!d.contains("hunter2"));
        assert_ne!(d, field_digest("test_host.web", "password", &v));
        assert_ne!(d, field_digest("test_host.db", "token", &v));
        assert_ne!(d, digest_of(b"\"hunter2\""), "not the bare value's digest");
    }

    #[test]
    fn refusals_read_as_one_sentence() {
        let r = Refusal::Objects {
            what: "a.b (id-1) is gone since the plan read it".into(),
            more: 2,
            applied: false,
        };
        assert_eq!(
            r.to_string(),
            "a.b (id-1) is gone since the plan read it (and 2 other objects differ)"
        );
        let r = Refusal::Target {
            provider: "aws".into(),
            plan: Some("aws account 1, region us-east-1".into()),
            now: None,
        };
        assert_eq!(
            r.to_string(),
            "provider `aws` now targets (unknown), and the plan was made against `aws account 1, region us-east-1`"
        );
        assert_eq!(
            fields_text(&["a".into(), "b".into()], "declared differently"),
            "fields `a`, `b` are declared differently"
        );
    }
}
