//! Rendering: plans as text (in the spirit of `terraform plan`), JSON and Markdown (for pull
//! requests: [`plan_markdown`]), the plan's JSON Schema, graphs as DOT and Mermaid, apply
//! reports as text. Rendering never computes: everything shown is in the [`Plan`], [`Graph`]
//! or [`ApplyReport`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::graph::Graph;
use crate::plan::{Action, Change, FieldChange, Plan};
use crate::policy::{PolicyReport, Severity};
use crate::reconcile::{ApplyReport, OpStatus};
use crate::value::Value;

mod markdown;

pub use markdown::{plan_drift_markdown, plan_markdown, MarkdownOptions, GITHUB_COMMENT_LIMIT};

/// The plan as text. Deterministic: the same plan gives the same bytes.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    let actionable: Vec<&Change> = plan.actionable().collect();
    if actionable.is_empty() && plan.destroy {
        let _ = writeln!(
            out,
            "Nothing to destroy: stack \"{}\" owns no objects{}.",
            plan.stack,
            match plan.providers.as_slice() {
                [one] => format!(" in provider `{one}`"),
                _ => String::new(),
            }
        );
    } else if actionable.is_empty() {
        let _ = writeln!(
            out,
            "No changes. Stack \"{}\" matches its declaration ({} resource{}).",
            plan.stack,
            plan.summary.unchanged,
            plural(plan.summary.unchanged)
        );
    } else {
        if !plan.drift.is_empty() {
            drift_section(&mut out, plan);
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Stack \"{}\": infra will perform the following actions{}:\n",
            plan.stack,
            if plan.destroy { " to destroy it" } else { "" }
        );
        let used: BTreeSet<Action> = actionable.iter().map(|c| c.action).collect();
        let _ = writeln!(
            out,
            "Resource actions are indicated with the following symbols:"
        );
        for (action, meaning) in [
            (Action::Create, "create"),
            (Action::Update, "update in place"),
            (
                Action::DeleteThenCreate,
                "destroy and then create replacement",
            ),
            (
                Action::CreateThenDelete,
                "create replacement and then destroy",
            ),
            (Action::Delete, "destroy"),
            (Action::Move, "move: re-owned under its new address"),
            (
                Action::Adopt,
                "adopt: the stack's ownership written, nothing else changes",
            ),
        ] {
            if used.contains(&action) {
                let _ = writeln!(out, "{:>3} {meaning}", action.symbol());
            }
        }
        out.push('\n');
        for c in &actionable {
            change_text(&mut out, c);
            out.push('\n');
        }
        let s = plan.summary;
        let moved = if s.moved > 0 {
            format!(", {} to move", s.moved)
        } else {
            String::new()
        };
        let adopted = if s.adopted > 0 {
            format!(", {} to adopt", s.adopted)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "Plan: {} to add, {} to change, {} to destroy{moved}{adopted}.",
            s.add, s.change, s.destroy
        );
    }
    for h in &plan.hints {
        let _ = writeln!(out, "\nHint: {h}");
    }
    policy_text(&mut out, &plan.policy);
    for e in &plan.errors {
        let _ = writeln!(out, "\nError: {e}");
    }
    out
}

/// Only the drift of a plan (`plan --drift-only`): the objects changed from outside since
/// their last apply, field by field, or one line saying there is none.
pub fn plan_drift_text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.drift.is_empty() {
        let checked = plan
            .changes
            .iter()
            .filter(|c| c.id.is_some() && c.action != Action::Delete)
            .count();
        let _ = writeln!(
            out,
            "No drift. The {checked} object{} of stack \"{}\" that exist match what was last \
             applied to them, or differ only where the code changed.",
            plural(checked),
            plan.stack
        );
    } else {
        drift_section(&mut out, plan);
    }
    out
}

/// The plan's drift as JSON (`plan --drift-only --json`): the stack, the drifted objects with
/// their fields' before (observed) and after (declared), and their count.
pub fn plan_drift_json(plan: &Plan) -> String {
    let objects: Vec<serde_json::Value> = plan
        .drifted()
        .map(|c| {
            let fields: Vec<&FieldChange> = c.drift_fields().collect();
            serde_json::json!({
                "address": c.address.to_string(),
                "kind": c.kind,
                "provider": c.provider,
                "id": c.id,
                "fields": fields,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "format_version": crate::plan::FORMAT_VERSION,
        "stack": plan.stack,
        "drifted": objects.len(),
        "drift": objects,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// The drift section: each object changed from outside, and the drifted fields.
fn drift_section(out: &mut String, plan: &Plan) {
    let n = plan.drift.len();
    let _ = writeln!(
        out,
        "Drift: {n} object{} changed outside infra since {} last apply (the actions below put \
         {} back):\n",
        plural(n),
        if n == 1 { "its" } else { "their" },
        if n == 1 { "it" } else { "them" }
    );
    for c in plan.drifted() {
        let id =
            c.id.as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default();
        let _ = writeln!(out, "  # {}{id}", c.address);
        let fields: Vec<&FieldChange> = c.drift_fields().collect();
        let width = fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in fields {
            let (before, after) = (
                f.before.as_ref().map_or("null".into(), Value::to_string),
                f.after.as_ref().map_or("null".into(), Value::to_string),
            );
            let _ = writeln!(
                out,
                "      {:width$} is {before}, declared and last applied {after}",
                f.name
            );
        }
    }
}

fn policy_text(out: &mut String, report: &PolicyReport) {
    if report.findings.is_empty() {
        if !report.rules.is_empty() {
            let _ = writeln!(
                out,
                "\nPolicy: {} rules checked, no findings.",
                report.rules.len()
            );
        }
        return;
    }
    let _ = writeln!(
        out,
        "\nPolicy: {} error{}, {} warning{}, {} suppressed ({} rules checked){}",
        report.errors,
        plural(report.errors),
        report.warnings,
        plural(report.warnings),
        report.suppressed,
        report.rules.len(),
        if report.errors > 0 {
            ". Errors block apply."
        } else {
            "."
        }
    );
    for f in &report.findings {
        let mark = match (&f.suppressed, f.severity) {
            (Some(_), _) => "suppressed",
            (None, Severity::Error) => "error",
            (None, Severity::Warning) => "warning",
        };
        let _ = writeln!(out, "  [{mark}] {} {}: {}", f.rule, f.address, f.message);
        if let Some(reason) = &f.suppressed {
            let _ = writeln!(out, "      reason: {reason}");
        } else {
            let _ = writeln!(out, "      fix: {}", f.fix);
        }
        if !f.references.is_empty() {
            let _ = writeln!(out, "      see: {}", f.references.join(", "));
        }
    }
}

fn moved_count(n: usize) -> String {
    if n > 0 {
        format!(", {n} moved")
    } else {
        String::new()
    }
}

fn adopted_count(n: usize) -> String {
    if n > 0 {
        format!(", {n} adopted")
    } else {
        String::new()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn change_text(out: &mut String, c: &Change) {
    let what = match c.action {
        Action::NoOp => "is unchanged",
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::DeleteThenCreate | Action::CreateThenDelete => "must be replaced",
        Action::Delete => "will be destroyed",
        Action::Move => "has moved",
        Action::Adopt => "will be adopted",
    };
    let protected = if c.protected { " (protected)" } else { "" };
    let moved = match (&c.moved_from, c.action) {
        (Some(m), Action::Move) => format!(" from {m}"),
        (Some(m), _) => format!(" (moved from {m})"),
        (None, _) => String::new(),
    };
    let adopted = match (&c.adopted, c.action) {
        (Some(_), Action::Adopt) => {
            " (it belongs to no stack: the stack's ownership is written, nothing else changes)"
                .to_string()
        }
        (Some(id), _) => format!(" (adopting {id}, which belongs to no stack)"),
        (None, _) => String::new(),
    };
    let _ = writeln!(out, "  # {} {what}{moved}{adopted}{protected}", c.address);
    if matches!(
        c.action,
        Action::Delete | Action::DeleteThenCreate | Action::CreateThenDelete
    ) {
        let _ = writeln!(out, "  # ({})", c.reason);
    }
    let id =
        c.id.as_deref()
            .map(|i| format!(" ({i})"))
            .unwrap_or_default();
    let _ = writeln!(out, "{:>3} {}{id}", c.action.symbol(), c.address);
    let width = c.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &c.fields {
        field_text(out, c.action, f, width);
    }
    if c.unchanged_fields > 0
        && matches!(
            c.action,
            Action::Update | Action::DeleteThenCreate | Action::CreateThenDelete
        )
    {
        let _ = writeln!(
            out,
            "        # ({} unchanged field{} hidden)",
            c.unchanged_fields,
            plural(c.unchanged_fields)
        );
    }
}

fn field_text(out: &mut String, action: Action, f: &FieldChange, width: usize) {
    let name = format!("{:width$}", f.name);
    let mut suffix = if f.forces_replacement {
        " # forces replacement".to_string()
    } else if let Some(effect) = &f.effect {
        format!(" # {effect}")
    } else {
        String::new()
    };
    if f.origin == Some(crate::plan::drift::Origin::Drift) {
        suffix.push_str(if suffix.is_empty() {
            " # drift: changed outside infra"
        } else {
            "; drift: changed outside infra"
        });
    }
    match (&f.before, &f.after) {
        (None, Some(after)) => {
            let _ = writeln!(
                out,
                "      + {name} = {}{suffix}",
                pretty(after, 8, 8 + width + 3)
            );
        }
        (Some(before), None) => {
            let _ = writeln!(
                out,
                "      - {name} = {}{suffix}",
                pretty(before, 8, 8 + width + 3)
            );
        }
        (Some(before), Some(after)) if action != Action::Delete => {
            if let Some(lines) = nested_diff(before, after) {
                let _ = writeln!(
                    out,
                    "      ~ {name} = {}{suffix}",
                    if matches!(after, Value::Map(_)) {
                        "{"
                    } else {
                        "["
                    }
                );
                for l in lines {
                    let _ = writeln!(out, "          {l}");
                }
                let close = if matches!(after, Value::Map(_)) {
                    "}"
                } else {
                    "]"
                };
                let _ = writeln!(out, "        {close}");
            } else {
                let _ = writeln!(out, "      ~ {name} = {before} -> {after}{suffix}");
            }
        }
        (Some(before), Some(_)) => {
            let _ = writeln!(
                out,
                "      - {name} = {}{suffix}",
                pretty(before, 8, 8 + width + 3)
            );
        }
        (None, None) => {
            let _ = writeln!(out, "      ~ {name} = null -> null{suffix}");
        }
    }
}

const LINE_WIDTH: usize = 100;

/// A value on one line when it fits in [`LINE_WIDTH`] (the line already has `used` columns),
/// else one element or key per line, indented four more than the line (`indent`), recursively.
fn pretty(v: &Value, indent: usize, used: usize) -> String {
    let flat = v.to_string();
    if used + flat.len() <= LINE_WIDTH {
        return flat;
    }
    let pad = " ".repeat(indent);
    let inner = indent + 4;
    match v {
        Value::List(l) if !l.is_empty() => {
            let mut s = String::from("[\n");
            for x in l {
                let _ = writeln!(s, "{pad}    {},", pretty(x, inner, inner));
            }
            s.push_str(&pad);
            s.push(']');
            s
        }
        Value::Map(m) if !m.is_empty() => {
            let width = m.keys().map(String::len).max().unwrap_or(0);
            let mut s = String::from("{\n");
            for (k, x) in m {
                let _ = writeln!(
                    s,
                    "{pad}    {k:width$} = {}",
                    pretty(x, inner, inner + width + 3)
                );
            }
            s.push_str(&pad);
            s.push('}');
            s
        }
        _ => flat,
    }
}

/// Element-wise lines for two lists (as sets: removed, added, and a count of the unchanged) or
/// two maps (per key); `None` when the values aren't two lists or two maps.
fn nested_diff(before: &Value, after: &Value) -> Option<Vec<String>> {
    match (before, after) {
        (Value::List(b), Value::List(a)) => {
            let bs: Vec<String> = b.iter().map(ToString::to_string).collect();
            let as_: Vec<String> = a.iter().map(ToString::to_string).collect();
            let bset: BTreeSet<&String> = bs.iter().collect();
            let aset: BTreeSet<&String> = as_.iter().collect();
            let mut lines: Vec<String> = Vec::new();
            lines.extend(
                bs.iter()
                    .filter(|x| !aset.contains(x))
                    .map(|x| format!("- {x},")),
            );
            lines.extend(
                as_.iter()
                    .filter(|x| !bset.contains(x))
                    .map(|x| format!("+ {x},")),
            );
            let same = as_.iter().filter(|x| bset.contains(x)).count();
            if lines.is_empty() {
                return None; // same elements, different order: show the whole values
            }
            if same > 0 {
                lines.push(format!(
                    "  # ({same} unchanged element{} hidden)",
                    plural(same)
                ));
            }
            Some(lines)
        }
        (Value::Map(b), Value::Map(a)) => {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            let width = keys.iter().map(|k| k.len() + 2).max().unwrap_or(0);
            let mut lines = Vec::new();
            let mut same = 0;
            for k in keys {
                let key = format!("{:width$}", format!("\"{k}\""));
                match (b.get(k), a.get(k)) {
                    (Some(x), Some(y)) if crate::plan::values_equal(Some(x), Some(y)) => same += 1,
                    (Some(x), Some(y)) => lines.push(format!("~ {key} = {x} -> {y}")),
                    (Some(x), None) => lines.push(format!("- {key} = {x}")),
                    (None, Some(y)) => lines.push(format!("+ {key} = {y}")),
                    (None, None) => {}
                }
            }
            if same > 0 {
                lines.push(format!("  # ({same} unchanged key{} hidden)", plural(same)));
            }
            Some(lines)
        }
        _ => None,
    }
}

/// The plan as pretty JSON (see [`plan_schema`]).
pub fn plan_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_default() + "\n"
}

/// The JSON Schema of [`plan_json`]'s output.
pub fn plan_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Plan);
    serde_json::to_value(schema).unwrap_or_default()
}

/// The graph in Graphviz DOT. Arrows point from a resource to what it depends on (as in
/// `terraform graph`); resources are grouped by provider.
pub fn graph_dot(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", graph.stack());
    let _ = writeln!(out, "  rankdir = \"RL\";");
    let _ = writeln!(out, "  node [shape = \"box\", fontname = \"monospace\"];");
    let providers: BTreeSet<&str> = graph.in_order().map(|r| r.schema.provider).collect();
    for p in providers {
        let _ = writeln!(out, "  subgraph \"cluster_{p}\" {{");
        let _ = writeln!(out, "    label = \"{p}\";");
        for r in graph.in_order().filter(|r| r.schema.provider == p) {
            let _ = writeln!(out, "    \"{}\";", r.address);
        }
        let _ = writeln!(out, "  }}");
    }
    for (from, to) in graph.edges() {
        let _ = writeln!(out, "  \"{from}\" -> \"{to}\";");
    }
    out.push_str("}\n");
    out
}

/// The graph as a Mermaid flowchart (arrows as in [`graph_dot`]).
pub fn graph_mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart RL\n");
    let ids: std::collections::HashMap<String, usize> = graph
        .in_order()
        .enumerate()
        .map(|(i, r)| (r.address.to_string(), i))
        .collect();
    let providers: BTreeSet<&str> = graph.in_order().map(|r| r.schema.provider).collect();
    for p in providers {
        let _ = writeln!(out, "  subgraph {p}");
        for r in graph.in_order().filter(|r| r.schema.provider == p) {
            let _ = writeln!(
                out,
                "    n{}[\"{}\"]",
                ids[&r.address.to_string()],
                r.address
            );
        }
        let _ = writeln!(out, "  end");
    }
    for (from, to) in graph.edges() {
        let _ = writeln!(
            out,
            "  n{} --> n{}",
            ids[&from.to_string()],
            ids[&to.to_string()]
        );
    }
    out
}

/// An apply report as text: one line per failed or skipped change, then a summary line.
pub fn report_text(report: &ApplyReport) -> String {
    let mut out = String::new();
    for o in &report.outcomes {
        match &o.status {
            OpStatus::Failed { error } => {
                let _ = writeln!(
                    out,
                    "Error: {} ({}) failed after {} attempt{}: {error}",
                    o.address,
                    o.op,
                    o.attempts,
                    plural(o.attempts as usize)
                );
            }
            OpStatus::Skipped { because } => {
                let _ = writeln!(out, "Skipped: {} ({}): {because}", o.address, o.op);
            }
            OpStatus::Succeeded | OpStatus::NothingToDo => {}
        }
    }
    let c = report.counts();
    if report.is_success() {
        let _ = writeln!(
            out,
            "Apply complete! Resources: {} added, {} changed, {} destroyed{}{}.",
            c.added,
            c.changed,
            c.destroyed,
            moved_count(c.moved),
            adopted_count(c.adopted)
        );
    } else {
        let _ = writeln!(
            out,
            "Apply failed: {} added, {} changed, {} destroyed{}{}; {} failed, {} skipped. Re-run to converge the rest.",
            c.added, c.changed, c.destroyed, moved_count(c.moved), adopted_count(c.adopted), c.failed, c.skipped
        );
    }
    out
}
