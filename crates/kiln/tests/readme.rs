//! The README's example is `examples/quickstart.rs`, word for word, so it runs as an example too.

#[test]
fn readme_example_is_the_quickstart_example() {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a ```rust block");
    let example: String = include_str!("../examples/quickstart.rs")
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        block, example,
        "README example and examples/quickstart.rs differ"
    );
}
