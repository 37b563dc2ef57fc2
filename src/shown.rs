//! Text from a model or the command line made safe to print. Names of nodes, tensors, ops and
//! domains, and file paths, are whatever the file holds: an escape sequence in one would reach
//! the terminal raw (a window title, a cleared screen) and a newline would forge lines of the
//! report. Every such text goes through [`shown`] before it is printed (the text report, the
//! one-line error, the plot), so that these characters appear as visible escapes:
//! - tab, newline and carriage return as `\t`, `\n`, `\r`;
//! - the other C0 controls and DEL as `\x00` to `\x1f` and `\x7f`;
//! - the C1 controls (U+0080 to U+009F), the line and paragraph separators (U+2028, U+2029),
//!   the bidirectional-text controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to
//!   U+2069) and the noncharacters U+FFFE and U+FFFF as `\u{80}`, `\u{202e}`, ... (lower-case
//!   hex, as Rust writes them).
//!
//! Every other character, a backslash too, is printed as it is: the escape keeps output from
//! being forged, it is not meant to be read back (a name holding the two characters `\n` looks
//! the same as one holding a newline), and shown text has nothing left to escape, so escaping
//! twice changes nothing. JSON output needs none of this: serde escapes it.

use std::borrow::Cow;
use std::fmt::Write;
use std::path::Path;

/// Whether `c` is printed as an escape.
fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{fffe}'
                | '\u{ffff}'
        )
}

/// `s` with its control characters shown as visible escapes (see the module's notes); borrowed
/// when there is nothing to escape.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(escaped) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if escaped(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if escaped(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path as [`shown`] prints it (bytes that are not UTF-8 as U+FFFD, as `Path::display` does).
pub fn shown_path(p: &Path) -> String {
    shown(&p.display().to_string()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        for s in [
            "",
            "/layer1/conv/Conv",
            "a\\nb",
            "späť ümlaut 畳み込み",
            "x\"'<&>",
        ] {
            assert!(matches!(shown(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn controls_become_visible_escapes() {
        assert_eq!(shown("a\tb\nc\rd"), "a\\tb\\nc\\rd");
        assert_eq!(
            shown("\x1b]0;owned\x07\x1b[2J"),
            "\\x1b]0;owned\\x07\\x1b[2J"
        );
        assert_eq!(shown("\0\x01\x1f\x7f"), "\\x00\\x01\\x1f\\x7f");
        assert_eq!(shown("\u{80}\u{9b}\u{9f}"), "\\u{80}\\u{9b}\\u{9f}");
        assert_eq!(shown("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
        assert_eq!(
            shown("\u{61c}\u{200e}\u{200f}\u{202a}\u{202e}\u{2066}\u{2069}"),
            "\\u{61c}\\u{200e}\\u{200f}\\u{202a}\\u{202e}\\u{2066}\\u{2069}"
        );
        assert_eq!(
            shown("\u{fffe}\u{ffff}\u{fffd}"),
            "\\u{fffe}\\u{ffff}\u{fffd}"
        );
    }

    #[test]
    fn shown_text_has_nothing_left_to_escape() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let once = shown(&all).into_owned();
        assert!(!once.chars().any(escaped));
        assert_eq!(shown(&once), once);
    }

    #[cfg(unix)]
    #[test]
    fn paths_too() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/m\x1b[2J\xff.onnx"));
        assert_eq!(shown_path(p), "/tmp/m\\x1b[2J\u{fffd}.onnx");
    }
}
