//! Formatting the generated statements as `rustfmt` does: through `rustfmt` itself when it is
//! installed, a chunk of statements at a time (so memory stays flat), else with the same
//! layout rules for the statements the writer makes (a builder chain on one line when it fits
//! rustfmt's widths, else one `.call()` per line).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// rustfmt's `max_width`.
const MAX_WIDTH: usize = 100;
/// rustfmt's `chain_width` and `fn_call_width` (the default `use_small_heuristics`).
const SMALL_WIDTH: usize = 60;

/// How generated code is formatted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Formatting {
    /// Through this `rustfmt` (edition 2021), falling back to [`Formatting::Builtin`] for a
    /// chunk it refuses.
    Rustfmt(PathBuf),
    /// The writer's own layout.
    Builtin,
}

impl Formatting {
    /// `rustfmt` from `$RUSTFMT` or the `PATH` when it runs, else the builtin layout.
    pub fn detect() -> Formatting {
        let program = std::env::var_os("RUSTFMT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("rustfmt"));
        let runs = Command::new(&program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if runs {
            Formatting::Rustfmt(program)
        } else {
            Formatting::Builtin
        }
    }
}

/// Statements of the body of `declare`, as written (four spaces of indent), formatted.
pub(super) fn format_body(formatting: &Formatting, body: &str) -> String {
    if let Formatting::Rustfmt(program) = formatting {
        if let Some(done) = rustfmt(program, body) {
            return done;
        }
    }
    body.to_string()
}

/// The body wrapped in a function for rustfmt, and unwrapped again; `None` when rustfmt fails.
fn rustfmt(program: &PathBuf, body: &str) -> Option<String> {
    const OPEN: &str = "fn declare(stack: &mut Stack) {\n";
    let mut child = Command::new(program)
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let text = format!("{OPEN}{body}}}\n");
    let mut stdin = child.stdin.take()?;
    // Written from another thread: rustfmt may start writing before it has read everything.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let inner = text.strip_prefix(OPEN)?.trim_end().strip_suffix('}')?;
    Some(inner.to_string())
}

/// `let <var> = stack.add(<expr>);` laid out as rustfmt would: on one line when it fits (a
/// chain of more than one call only when it is at most `chain_width` long); else the right-hand
/// side alone on the next line when it fits there; else the chain as `stack.add`'s argument on
/// its own line; else one `.call()` per line.
pub(super) fn let_add(var: &str, expr: &str) -> String {
    let links = chain_links(expr);
    let one_line_chain = links.len() <= 2 || expr.len() <= SMALL_WIDTH;
    let one = format!("    let {var} = stack.add({expr});");
    if one_line_chain && one.len() <= MAX_WIDTH {
        return one + "\n";
    }
    let next = format!("        stack.add({expr});");
    if one_line_chain && next.len() <= MAX_WIDTH {
        return format!("    let {var} =\n{next}\n");
    }
    let mut out = format!("    let {var} = stack.add(\n");
    if links.len() < 2 || (one_line_chain && 8 + expr.len() < MAX_WIDTH) {
        out.push_str(&format!("        {expr},\n"));
    } else {
        out.push_str(&format!("        {}\n", links[0]));
        for (i, link) in links[1..].iter().enumerate() {
            let comma = if i + 2 == links.len() { "," } else { "" };
            out.push_str(&format!("            {link}{comma}\n"));
        }
    }
    out.push_str("    );\n");
    out
}

/// `stack.adopt(&<var>, "<id>");` laid out as rustfmt would.
pub(super) fn adopt(var: &str, id_literal: &str) -> String {
    let args = format!("&{var}, {id_literal}");
    let one = format!("    stack.adopt({args});");
    if args.len() <= SMALL_WIDTH && one.len() <= MAX_WIDTH {
        one + "\n"
    } else {
        format!("    stack.adopt(\n        &{var},\n        {id_literal},\n    );\n")
    }
}

/// A builder chain split at its top-level `.` (outside brackets and string literals): the root
/// (`Vpc::new("main")`) and each `.call(…)`.
pub(super) fn chain_links(expr: &str) -> Vec<&str> {
    let mut links = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0);
    let bytes = expr.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            // `.` between links; not the `..` of a range nor a float's point.
            b'.' if depth == 0
                && i > 0
                && bytes[i - 1] != b'.'
                && bytes
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_') =>
            {
                links.push(expr[start..i].trim());
                start = i;
            }
            _ => {}
        }
    }
    links.push(expr[start..].trim());
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_split_at_top_level_dots_only() {
        assert_eq!(
            chain_links(r#"Vpc::new("a.b").cidr("10.0.0.0/16").tags(x.y())"#),
            vec![
                r#"Vpc::new("a.b")"#,
                r#".cidr("10.0.0.0/16")"#,
                ".tags(x.y())"
            ]
        );
    }

    #[test]
    fn short_statements_stay_on_one_line_and_long_chains_break() {
        assert_eq!(
            let_add("vpc_main", r#"Vpc::new("main").cidr("10.0.0.0/16")"#),
            "    let vpc_main = stack.add(Vpc::new(\"main\").cidr(\"10.0.0.0/16\"));\n"
        );
        let long = let_add(
            "a",
            "Vpc::new(\"main\").cidr(\"10.0.0.0/16\").enable_dns(true).x(1).y(2)",
        );
        assert_eq!(
            long,
            "    let a = stack.add(\n        Vpc::new(\"main\")\n            .cidr(\"10.0.0.0/16\")\n            \
             .enable_dns(true)\n            .x(1)\n            .y(2),\n    );\n"
        );
        assert!(adopt("vpc_main", "\"vpc-1\"").starts_with("    stack.adopt(&vpc_main"));
        assert!(adopt(&"v".repeat(50), "\"subnet-0123456789abcdef\"").contains("(\n        &v"));
    }
}
