//! Helpers shared by this crate's test files.

/// A `#[should_panic]` test named `$name`, expecting `$msg` in the panic message of `$body`.
macro_rules! panics {
    ($name:ident, $msg:expr, $body:expr) => {
        #[test]
        #[should_panic(expected = $msg)]
        fn $name() {
            let _ = $body;
        }
    };
}
