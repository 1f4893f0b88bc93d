//! Text from outside (registry error messages, file names, tags) is sanitised before it
//! reaches a terminal: control characters could rewrite the user's screen.

/// Replaces control characters and caps the length at `max` characters.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                '?'
            } else {
                c
            }
        })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(super::sanitize("a\x1b[2Jb\nc", 100), "a?[2Jb?c");
        assert_eq!(super::sanitize("abcdef", 3), "abc…");
        assert_eq!(super::sanitize("x\u{202e}y", 10), "x?y");
    }
}
