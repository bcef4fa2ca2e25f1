//! The README's Rust examples that doctests can't check. Its "Test your infrastructure in CI"
//! example (a user's `tests/infra.rs`) is `example.rs`, character for character
//! (`the_readme_shows_example_rs` checks it; rustfmt leaves it as the README has it), so that
//! its `#[test]`s compile, pass and keep their snapshot (rustdoc strips `#[test]` functions from
//! a doctest without compiling their bodies). The README's other Rust blocks are doctests
//! (`ReadmeDoctests` in src/lib.rs). `features.rs` checks the dependency line the README gives
//! a test-only user: no AWS SDK and no bollard in its build.

#[rustfmt::skip]
mod example;
mod features;

#[test]
fn the_readme_shows_example_rs() {
    let example = include_str!("example.rs");
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&format!("and in `tests/infra.rs`:\n\n```rust\n{example}```")),
        "README.md's tests/infra.rs example and tests/readme/example.rs differ: copy one to the other"
    );
}

/// The README's "A fast edit → plan loop" shows the code of `examples/production-dylib.rs` (which
/// `cargo build --all-targets` compiles) as a block rustdoc does not build (a doctest would load
/// the `infra` rlib beside the dylib): this keeps the two the same, and the one-line `lib.rs` of
/// `dev/infra-dylib` it quotes.
#[test]
fn the_readme_shows_the_dylib_examples_code() {
    let example = include_str!("../../examples/production-dylib.rs");
    let code: Vec<&str> = example
        .lines()
        .filter(|line| !line.starts_with("//"))
        .skip_while(|line| line.is_empty())
        .collect();
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&format!("```rust,ignore\n{}\n```", code.join("\n"))),
        "README.md's production-dylib code and examples/production-dylib.rs differ: copy one to the other"
    );
    let lib = include_str!("../../dev/infra-dylib/src/lib.rs");
    assert!(lib.lines().any(|line| line == "pub use infra::*;"));
    assert!(readme.contains("`pub use infra::*;`"));
}
