//! One-line messages from errors and panics, as the command prints them and as
//! validation reports them.

use std::any::Any;

/// `s` on one line: every run of whitespace, newlines included, becomes one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its chain of causes (`what: because: ...`) on one line.
pub fn error_line(e: &anyhow::Error) -> String {
    printable_line(&format!("{e:#}"))
}

/// `s` on one line with no control character left: whitespace collapsed as [`one_line`] does,
/// then what remains escaped as [`crate::shown::shown`] prints it. The last guard on every line
/// the command prints to standard error, whichever message (a dependency's too) it holds.
pub fn printable_line(s: &str) -> String {
    crate::shown::shown(&one_line(s)).into_owned()
}

/// The message a panic was raised with, or `None` when its payload is not a string.
///
/// Pass the payload itself (`&*payload` for a `Box<dyn Any + Send>`), not a
/// reference to its box.
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::catch_unwind;

    #[test]
    fn whitespace_collapses_to_single_spaces() {
        assert_eq!(one_line("  a\n\tb   c \n"), "a b c");
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn the_error_chain_is_joined() {
        let e = anyhow::anyhow!("inner\nproblem").context("outer");
        assert_eq!(error_line(&e), "outer: inner problem");
    }

    #[test]
    fn no_control_character_is_left() {
        let e = anyhow::anyhow!("tensor 'a\x1b[2J'\n  at\tnode '\u{9b}1m'").context("outer");
        assert_eq!(
            error_line(&e),
            "outer: tensor 'a\\x1b[2J' at node '\\u{9b}1m'"
        );
    }

    #[test]
    fn literal_formatted_and_other_payloads() {
        let message = |f: fn()| panic_message(&*catch_unwind(f).unwrap_err());
        assert_eq!(message(|| panic!("boom")).as_deref(), Some("boom"));
        assert_eq!(
            message(|| panic!("{} {}", "two", 2)).as_deref(),
            Some("two 2")
        );
        assert_eq!(message(|| std::panic::panic_any(7u8)), None);
    }
}
