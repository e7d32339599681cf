//! Text written by screens, made safe to show on the operator's terminal.
//!
//! Statuses, proof-of-play records and command answers come from the
//! devices, and a stolen screen writes what it likes: escape sequences
//! that move the cursor, recolour or retitle the operator's terminal,
//! bidirectional overrides that reorder what is shown, or a megabyte that
//! scrolls everything else away. Everything such a string holds is kept
//! but for those characters, each shown as U+FFFD so that tampering shows.

use std::borrow::Cow;

/// How much of one device-provided value a table cell or a message shows.
pub const MAX_SHOWN: usize = 120;

/// Whether `c` changes how a terminal shows what follows: C0 and C1
/// controls and DEL (escape sequences, carriage returns), line and
/// paragraph separators, and the bidirectional formatting characters.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character replaced, at full length: for
/// exports, where the data is wanted whole.
pub fn without_controls(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe) {
        Cow::Owned(
            text.chars()
                .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` as a terminal may show it: unsafe characters replaced, and at
/// most `max_chars` characters (an ellipsis marks the cut).
pub fn printable(text: &str, max_chars: usize) -> String {
    let clean = without_controls(text);
    if clean.chars().count() <= max_chars {
        return clean.into_owned();
    }
    let mut cut: String = clean.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_overrides_are_neutralised_and_length_bounded() {
        assert_eq!(printable("lobby-1", MAX_SHOWN), "lobby-1");
        assert!(matches!(without_controls("lobby-1"), Cow::Borrowed(_)));
        // Clear the screen, retitle the window, overwrite the line.
        let hostile = "x\u{1b}[2J\u{1b}]0;owned\u{7}\rok\u{9b}31m\u{202e}1-ybbol";
        let shown = printable(hostile, MAX_SHOWN);
        assert!(!shown.chars().any(is_unsafe), "{shown:?}");
        assert_eq!(
            shown,
            "x\u{FFFD}[2J\u{FFFD}]0;owned\u{FFFD}\u{FFFD}ok\u{FFFD}31m\u{FFFD}1-ybbol"
        );
        assert_eq!(without_controls("a\nb"), "a\u{FFFD}b");
        // Non-ASCII text that is no control passes.
        assert_eq!(printable("Hall d'accueil é 東", 40), "Hall d'accueil é 東");
        let long = "é".repeat(10_000);
        let cut = printable(&long, 8);
        assert_eq!(cut.chars().count(), 8);
        assert!(cut.ends_with('…'));
        assert_eq!(without_controls(&long).len(), long.len());
    }
}
