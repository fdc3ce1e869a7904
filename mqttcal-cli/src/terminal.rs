//! Text from other nodes, made safe to show on a terminal.

/// `text` on one line with no control, format or bidirectional characters (shown as
/// `\u{..}`), cut to `max` characters with `…`: a node's words cannot move the cursor,
/// retitle the window, hide what follows or flood the screen.
pub(crate) fn safe(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() || is_format(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Unicode's invisible format characters that reorder or hide text (bidirectional
/// controls, zero-width characters, the byte order mark).
fn is_format(c: char) -> bool {
    matches!(u32::from(c),
        0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_and_cuts_long_text() {
        assert_eq!(safe("reading 3 of 10", 80), "reading 3 of 10");
        assert_eq!(safe("\x1b]0;PWNED\x07", 80), "\\u{1b}]0;PWNED\\u{7}");
        assert_eq!(safe("a\r\nb", 80), "a\\u{d}\\u{a}b");
        assert_eq!(safe("x\u{202e}y", 80), "x\\u{202e}y");
        assert_eq!(safe("\u{9b}2J", 80), "\\u{9b}2J", "C1 controls too");
        assert_eq!(safe(&"é".repeat(10), 4), "éééé…");
    }
}
