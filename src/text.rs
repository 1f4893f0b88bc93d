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

/// What is wrong with a JSON document, and where, without a word of its content: serde's
/// own messages quote the value they did not expect (`invalid type: string "…"`), and in a
/// credentials file or a helper's answer that value may be a password.
pub fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not JSON",
        Category::Data => "a value of the wrong type or shape",
        Category::Eof => "cut short",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(super::sanitize("a\x1b[2Jb\nc", 100), "a?[2Jb?c");
        assert_eq!(super::sanitize("abcdef", 3), "abc…");
        assert_eq!(super::sanitize("x\u{202e}y", 10), "x?y");
    }

    #[test]
    fn json_errors_never_quote_the_content() {
        let e =
            serde_json::from_str::<std::collections::HashMap<String, u8>>(r#"{"a": "hunter2"}"#)
                .unwrap_err();
        let said = super::json_error(&e);
        assert_eq!(
            said,
            "a value of the wrong type or shape at line 1 column 15"
        );
        assert!(!said.contains("hunter2"));
    }
}
