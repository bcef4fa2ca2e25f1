//! Plans as GitHub-flavoured Markdown, for a pull-request comment: a summary table per provider
//! and kind, the replacements and deletions with their reasons, the policy report, then every
//! change's diff in a collapsible section, within a size limit.
//!
//! The diffs are the text plan's own lines ([`change_text`](super::change_text)), so a secret is
//! shown exactly as the text plan shows it: the plan holds only its digest. Everything that comes
//! from the plan is escaped for where it lands (code fences longer than any backtick run in
//! them, code spans, HTML in `<summary>`, pipes in table cells), so no value can close a section
//! or break a table.
//!
//! The document is built as a list of blocks, each whole lines and self-contained (a
//! `<details>` section with its fenced diff is one block). Truncation drops whole blocks, so the
//! result never ends mid-line, never leaves a `<details>` or a fence open.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::plan::{Action, Change, Plan};
use crate::policy::{PolicyReport, Severity};

use super::plural;

/// GitHub refuses comments longer than 65,536 characters; this leaves room for a line a CI
/// script adds around the plan.
pub const GITHUB_COMMENT_LIMIT: usize = 65_000;

/// How [`plan_markdown`] renders.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MarkdownOptions {
    /// The most bytes the document may have (default [`GITHUB_COMMENT_LIMIT`]). Bytes of UTF-8
    /// are never fewer than characters or UTF-16 code units, so the document fits however the
    /// limit is counted. A limit too small for the heading, the summary table, the policy
    /// counts and the truncation note is raised to what they need.
    pub limit: usize,
}

impl Default for MarkdownOptions {
    fn default() -> Self {
        MarkdownOptions {
            limit: GITHUB_COMMENT_LIMIT,
        }
    }
}

impl MarkdownOptions {
    /// The same options with another size limit, in bytes.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// One self-contained piece of the document: whole lines, ending with a newline.
struct Block {
    text: String,
    /// Always kept (the heading, the summary, the policy counts): what a reviewer must see.
    keep: bool,
    /// The resources whose diff this block holds (counted in the truncation note).
    diffs: usize,
}

impl Block {
    fn keep(text: String) -> Self {
        Block {
            text,
            keep: true,
            diffs: 0,
        }
    }
    fn optional(text: String) -> Self {
        Block {
            text,
            keep: false,
            diffs: 0,
        }
    }
}

/// The plan as GitHub-flavoured Markdown, at most `options.limit` bytes. Deterministic: the
/// same plan and options give the same bytes.
pub fn plan_markdown(plan: &Plan, options: &MarkdownOptions) -> String {
    let blocks = blocks(plan);
    let total_diffs: usize = blocks.iter().map(|b| b.diffs).sum();
    let size: usize = blocks.iter().map(|b| b.text.len()).sum();
    if size <= options.limit {
        return blocks.into_iter().map(|b| b.text).collect();
    }
    // The note is longest with the largest counts: reserve that much.
    let total_lines: usize = blocks.iter().map(|b| b.text.lines().count()).sum();
    let reserve = truncation_note(total_diffs, total_diffs, total_lines, options.limit).len();
    let kept_size: usize = blocks.iter().filter(|b| b.keep).map(|b| b.text.len()).sum();
    let mut room = options.limit.saturating_sub(reserve + kept_size);
    let (mut out, mut left_diffs, mut left_lines) = (String::new(), 0, 0);
    let mut cutting = false;
    for b in blocks {
        if b.keep {
            out.push_str(&b.text);
        } else if !cutting && b.text.len() <= room {
            room -= b.text.len();
            out.push_str(&b.text);
        } else {
            // Once one block is left out, every later optional one is too: what is shown is a
            // prefix of each section, never a section with a hole in it.
            cutting = true;
            left_diffs += b.diffs;
            left_lines += b.text.lines().count();
        }
    }
    out.push_str(&truncation_note(
        left_diffs,
        total_diffs,
        left_lines,
        options.limit,
    ));
    out
}

/// Says what was left out and where to see all of it.
fn truncation_note(diffs: usize, of: usize, lines: usize, limit: usize) -> String {
    format!(
        "\n---\n\n**Truncated** to stay within {limit} characters: {lines} line{} left out, \
         including the diffs of {diffs} of {of} changed resource{}. The text plan (`plan`) or \
         the JSON plan (`plan --format json`) shows everything.\n",
        plural(lines),
        plural(of),
    )
}

fn blocks(plan: &Plan) -> Vec<Block> {
    let mut blocks = Vec::new();
    let actionable: Vec<&Change> = plan.actionable().collect();
    // A live run plans one provider at a time (phases): say which.
    let scope = match plan.providers.as_slice() {
        [one] => format!(", provider {}", code_span(one)),
        _ => String::new(),
    };
    blocks.push(Block::keep(format!(
        "## Plan for stack {}{scope}{}\n\n",
        code_span(&plan.stack),
        if plan.destroy { " (destroy)" } else { "" }
    )));
    if actionable.is_empty() {
        let line = if plan.destroy {
            format!(
                "**Nothing to destroy:** stack {} owns no objects{}.\n",
                code_span(&plan.stack),
                match plan.providers.as_slice() {
                    [one] => format!(" in provider {}", code_span(one)),
                    _ => String::new(),
                }
            )
        } else {
            format!(
                "**No changes.** Stack {} matches its declaration ({} resource{}).\n",
                code_span(&plan.stack),
                plan.summary.unchanged,
                plural(plan.summary.unchanged)
            )
        };
        blocks.push(Block::keep(line));
    } else {
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
        blocks.push(Block::keep(format!(
            "**Plan:** {} to add, {} to change, {} to destroy{moved}{adopted}.\n\n{}",
            s.add,
            s.change,
            s.destroy,
            summary_table(&actionable, s.moved > 0, s.adopted > 0)
        )));
    }
    if !plan.errors.is_empty() {
        let mut text = String::from("\n### Errors\n\nThese block apply:\n\n");
        for e in &plan.errors {
            let _ = writeln!(text, "- {}", inline(e));
        }
        blocks.push(Block::keep(text));
    }
    attention(&mut blocks, &actionable);
    drift(&mut blocks, &actionable);
    adoptions(&mut blocks, &actionable);
    moves(&mut blocks, &actionable, &plan.hints);
    policy(&mut blocks, &plan.policy);
    diffs(&mut blocks, &actionable);
    blocks
}

/// Adds, changes, replaces and deletes per provider and kind, and their totals; with a Move
/// column (objects re-owned under a new address) when the plan moves any, and an Adopt column
/// (objects that belonged to no stack) when it adopts any.
fn summary_table(changes: &[&Change], with_moves: bool, with_adoptions: bool) -> String {
    let mut counts: BTreeMap<(&str, &str), [usize; 6]> = BTreeMap::new();
    for c in changes {
        let n = counts.entry((&c.provider, &c.kind)).or_default();
        if c.moved_from.is_some() && !c.action.is_replace() {
            n[4] += 1;
        }
        if c.adopted.is_some() {
            n[5] += 1;
        }
        let column = match c.action {
            Action::Create => 0,
            Action::Update => 1,
            Action::DeleteThenCreate | Action::CreateThenDelete => 2,
            Action::Delete => 3,
            _ => continue,
        };
        n[column] += 1;
    }
    let columns: Vec<usize> = (0..4)
        .chain(with_moves.then_some(4))
        .chain(with_adoptions.then_some(5))
        .collect();
    let mut total = [0; 6];
    let mut out = String::from("| Provider | Kind | Add | Change | Replace | Delete |");
    if with_moves {
        out.push_str(" Move |");
    }
    if with_adoptions {
        out.push_str(" Adopt |");
    }
    out.push_str("\n|---|---|");
    for _ in &columns {
        out.push_str("--:|");
    }
    out.push('\n');
    for ((provider, kind), n) in &counts {
        let _ = write!(out, "| {} | {} |", cell(provider), code_cell(kind));
        for &i in &columns {
            let _ = write!(out, " {} |", n[i]);
        }
        out.push('\n');
        for (t, x) in total.iter_mut().zip(n) {
            *t += x;
        }
    }
    out.push_str("| **Total** | |");
    for &i in &columns {
        let _ = write!(out, " **{}** |", total[i]);
    }
    out.push('\n');
    out
}

/// The declared adoptions: objects that belonged to no stack, now the stack's.
fn adoptions(blocks: &mut Vec<Block>, changes: &[&Change]) {
    let adopted: Vec<&&Change> = changes.iter().filter(|c| c.adopted.is_some()).collect();
    if adopted.is_empty() {
        return;
    }
    blocks.push(Block::keep("\n### Adoptions\n\n".into()));
    for c in adopted {
        let also = if c.action == Action::Update {
            " and updated in place"
        } else {
            ": only the stack's ownership is written"
        };
        blocks.push(Block::optional(format!(
            "- **adopt** {} as {}{also}.\n",
            code_span(c.adopted.as_deref().unwrap_or("-")),
            code_span(&c.address.to_string()),
        )));
    }
}

/// The declared moves (kept objects re-owned under their new address) and the hints for
/// renames without one.
fn moves(blocks: &mut Vec<Block>, changes: &[&Change], hints: &[String]) {
    let moved: Vec<&&Change> = changes
        .iter()
        .filter(|c| c.moved_from.is_some() && !c.action.is_replace())
        .collect();
    if !moved.is_empty() {
        blocks.push(Block::keep("\n### Moves\n\n".into()));
        for c in moved {
            let from = c
                .moved_from
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let also = if c.action == Action::Update {
                " and updated in place"
            } else {
                ""
            };
            blocks.push(Block::optional(format!(
                "- **move** {} to {}{also}: the object ({}) is kept.\n",
                code_span(&from),
                code_span(&c.address.to_string()),
                code_span(c.id.as_deref().unwrap_or("-")),
            )));
        }
    }
    if !hints.is_empty() {
        blocks.push(Block::keep("\n### Hints\n\n".into()));
        for h in hints {
            blocks.push(Block::optional(format!("- {}\n", inline(h))));
        }
    }
}

/// The replacements, then the deletions, each with its reason: what a reviewer must not miss.
fn attention(blocks: &mut Vec<Block>, changes: &[&Change]) {
    let replaced = changes.iter().filter(|c| c.action.is_replace());
    let deleted = changes.iter().filter(|c| c.action == Action::Delete);
    let items: Vec<&&Change> = replaced.chain(deleted).collect();
    if items.is_empty() {
        return;
    }
    blocks.push(Block::keep("\n### Replacements and deletions\n\n".into()));
    for c in items {
        let what = match c.action {
            Action::DeleteThenCreate => "**replace** (destroy, then create)",
            Action::CreateThenDelete => "**replace** (create, then destroy)",
            _ => "**delete**",
        };
        let protected = if c.protected { " (protected)" } else { "" };
        // The fields that force the replacement, unless the reason names them already.
        let unnamed: Vec<String> = c
            .replace_because
            .iter()
            .filter(|f| !c.reason.contains(&format!("`{f}`")))
            .map(|f| code_span(f))
            .collect();
        let because = if unnamed.is_empty() {
            String::new()
        } else {
            format!(" Forced by {}.", unnamed.join(", "))
        };
        blocks.push(Block::optional(format!(
            "- {what} {}{protected}: {}.{because}\n",
            code_span(&c.address.to_string()),
            inline(&c.reason),
        )));
    }
}

/// Only the drift of a plan, as Markdown (`plan --drift-only --format markdown`): for an
/// issue or a comment opened by a scheduled drift check.
pub fn plan_drift_markdown(plan: &Plan) -> String {
    let mut out = format!("## Drift in stack {}\n", code_span(&plan.stack));
    let changes: Vec<&Change> = plan.drifted().collect();
    if changes.is_empty() {
        out.push_str("\n**No drift.** Every object matches what was last applied to it.\n");
        return out;
    }
    let mut blocks = Vec::new();
    drift(&mut blocks, &changes);
    for b in blocks {
        out.push_str(&b.text);
    }
    out
}

/// The objects changed outside infra since their last apply, with the drifted fields' values
/// (the changes put them back): drift told apart from the pull request's own change.
fn drift(blocks: &mut Vec<Block>, changes: &[&Change]) {
    let drifted: Vec<&&Change> = changes.iter().filter(|c| c.has_drift()).collect();
    if drifted.is_empty() {
        return;
    }
    blocks.push(Block::keep(format!(
        "\n### Drift\n\n{} object{} changed outside infra since {} last apply; this plan puts \
         {} back:\n\n",
        drifted.len(),
        plural(drifted.len()),
        if drifted.len() == 1 { "its" } else { "their" },
        if drifted.len() == 1 { "it" } else { "them" },
    )));
    for c in drifted {
        let fields: Vec<String> = c
            .drift_fields()
            .map(|f| {
                let show = |v: &Option<crate::value::Value>| {
                    code_span(&v.as_ref().map_or("null".into(), |v| v.to_string()))
                };
                format!(
                    "{} is {}, declared {}",
                    code_span(&f.name),
                    show(&f.before),
                    show(&f.after)
                )
            })
            .collect();
        blocks.push(Block::optional(format!(
            "- {} ({}): {}\n",
            code_span(&c.address.to_string()),
            code_span(c.id.as_deref().unwrap_or("-")),
            fields.join("; ")
        )));
    }
}

/// The policy report: its counts (always kept), then one table row per finding.
fn policy(blocks: &mut Vec<Block>, report: &PolicyReport) {
    let mut head = String::from("\n### Policy\n\n");
    if report.findings.is_empty() {
        let _ = writeln!(
            head,
            "Clean: {} rule{} checked, no findings.",
            report.rules.len(),
            plural(report.rules.len())
        );
        blocks.push(Block::keep(head));
        return;
    }
    let _ = writeln!(
        head,
        "{} error{}, {} warning{}, {} suppressed ({} rule{} checked).{}\n",
        report.errors,
        plural(report.errors),
        report.warnings,
        plural(report.warnings),
        report.suppressed,
        report.rules.len(),
        plural(report.rules.len()),
        if report.errors > 0 {
            " **Errors block apply.**"
        } else {
            ""
        }
    );
    head.push_str(
        "| Severity | Rule | Resource | Finding | Fix or reason |\n|---|---|---|---|---|\n",
    );
    blocks.push(Block::keep(head));
    for f in &report.findings {
        let severity = match (&f.suppressed, f.severity) {
            (Some(_), Severity::Error) => "suppressed error",
            (Some(_), _) => "suppressed warning",
            (None, Severity::Error) => "**error**",
            (None, _) => "warning",
        };
        let mut fix = match &f.suppressed {
            Some(reason) => format!("suppressed: {}", cell(reason)),
            None => cell(&f.fix),
        };
        if !f.references.is_empty() {
            let refs: Vec<String> = f.references.iter().map(|r| code_cell(r)).collect();
            let _ = write!(fix, " (see {})", refs.join(", "));
        }
        blocks.push(Block::optional(format!(
            "| {severity} | {} | {} | {} | {fix} |\n",
            code_cell(&f.rule),
            code_cell(&f.address),
            cell(&f.message),
        )));
    }
}

/// Where a change's diff comes in the list: replacements, deletions, updates, then creations
/// (the order of what a reviewer must read, and of what survives truncation).
fn rank(action: Action) -> u8 {
    match action {
        Action::DeleteThenCreate | Action::CreateThenDelete => 0,
        Action::Delete => 1,
        Action::Update => 2,
        _ => 3,
    }
}

/// One collapsible section per changed resource, in [`rank`] order (the plan's order within a
/// rank). Per resource rather than per provider: collapsed, the sections read as the list of
/// every change, one opens just the resource under review, and truncation drops whole
/// resources.
fn diffs(blocks: &mut Vec<Block>, changes: &[&Change]) {
    if changes.is_empty() {
        return;
    }
    blocks.push(Block::keep("\n### Changes\n".into()));
    let mut ordered = changes.to_vec();
    ordered.sort_by_key(|c| rank(c.action)); // stable: the plan's order within a rank
    for c in ordered {
        let mut text = String::new();
        super::change_text(&mut text, c);
        let body: String = text.lines().map(|l| diff_line(l) + "\n").collect();
        let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
        let what = match c.action {
            Action::Create => "will be created",
            Action::Update => "will be updated in place",
            Action::DeleteThenCreate => "must be replaced (destroyed, then created)",
            Action::CreateThenDelete => "must be replaced (created, then destroyed)",
            Action::Delete => "will be destroyed",
            Action::Move => "has moved",
            Action::Adopt => "will be adopted",
            _ => "is unchanged",
        };
        blocks.push(Block {
            text: format!(
                "\n<details><summary><code>{}</code> {} {what}</summary>\n\n{fence}diff\n{body}{fence}\n\n</details>\n",
                html(c.action.symbol().trim()),
                html(&c.address.to_string()),
            ),
            keep: false,
            diffs: 1,
        });
    }
}

/// A text-plan line with its leading symbol moved to the first column, so GitHub's `diff`
/// highlighting colours it (`~` becomes `!`, which it shows as changed); the rest as it is.
fn diff_line(line: &str) -> String {
    let rest = line.trim_start_matches(' ');
    let indent = line.len() - rest.len();
    for symbol in ["-/+", "+/-", "+", "-", "~"] {
        if let Some(after) = rest.strip_prefix(symbol) {
            if indent > 0 && after.starts_with(' ') {
                let shown = if symbol == "~" { "!" } else { symbol };
                return format!("{shown}{}{after}", " ".repeat(indent));
            }
        }
    }
    line.to_string()
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// `s` as a code span: delimited by more backticks than any run in it, padded when it starts
/// or ends with one; on one line.
fn code_span(s: &str) -> String {
    let s = s.replace(['\r', '\n'], " ");
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    if s.starts_with('`') || s.ends_with('`') {
        format!("{ticks} {s} {ticks}")
    } else {
        format!("{ticks}{s}{ticks}")
    }
}

/// A code span in a table cell: GitHub splits rows at `|` before reading code spans.
fn code_cell(s: &str) -> String {
    code_span(s).replace('|', "\\|")
}

/// Text in a table cell, names in backticks as code ([`inline`]).
fn cell(s: &str) -> String {
    inline(s).replace('|', "\\|")
}

/// Plain text as Markdown that shows it as written: the characters that would start emphasis,
/// code, links, HTML or an entity backslash-escaped; line breaks as spaces.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\r' | '\n' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '~' | '#' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Text in which the plan marks names with backticks (a reason: "`cidr_block` forces
/// replacement"): those as code spans, the rest as [`text`]. Unbalanced backticks: all text.
fn inline(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return text(s);
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| if i % 2 == 1 { code_span(p) } else { text(p) })
        .collect()
}

/// Text in HTML (the `<summary>` line).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lines_move_their_symbol_to_the_first_column() {
        assert_eq!(diff_line("      + a = 1"), "+       a = 1");
        assert_eq!(diff_line("      ~ a = 1 -> 2"), "!       a = 1 -> 2");
        assert_eq!(diff_line("-/+ aws_subnet.b"), "-/+ aws_subnet.b");
        assert_eq!(diff_line("  ~ aws_x.y (id)"), "!   aws_x.y (id)");
        // A negative number in a list is not a symbol.
        assert_eq!(diff_line("            -1,"), "            -1,");
        assert_eq!(
            diff_line("  # aws_x.y will be created"),
            "  # aws_x.y will be created"
        );
    }

    #[test]
    fn code_spans_outlast_the_backticks_in_them() {
        assert_eq!(code_span("aws_vpc.main"), "`aws_vpc.main`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(code_cell("a|b"), "`a\\|b`");
    }

    #[test]
    fn text_cannot_open_html_emphasis_or_cells() {
        assert_eq!(
            cell("<img src=x> *a* | [l](u)"),
            "\\<img src=x\\> \\*a\\* \\| \\[l\\](u)"
        );
        assert_eq!(
            inline("`cidr_block` forces replacement"),
            "`cidr_block` forces replacement"
        );
        assert_eq!(inline("odd ` tick"), "odd \\` tick");
    }

    #[test]
    fn fences_are_longer_than_any_backtick_run() {
        assert_eq!(longest_backtick_run("a ```` b ` c"), 4);
        assert_eq!(longest_backtick_run("none"), 0);
    }
}
