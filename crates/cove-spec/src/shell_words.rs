//! Splitting a command string into arguments, as Compose does for string
//! `command:` / `entrypoint:` (POSIX shell word rules, no expansion).

/// Splits `s` into words. Fails on an unclosed quote.
pub fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unclosed double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Joins words into one command line that [`split`] reads back: words with
/// spaces or shell characters are single-quoted.
pub fn join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::{join, split};

    #[test]
    fn join_round_trips() {
        for words in [
            vec!["test", "-e", "ok"],
            vec!["sh", "-c", "echo 'hi' $X"],
            vec!["a b", ""],
        ] {
            let words: Vec<String> = words.into_iter().map(String::from).collect();
            assert_eq!(split(&join(&words)).unwrap(), words);
        }
        assert_eq!(
            join(&["test".into(), "-e".into(), "ok".into()]),
            "test -e ok"
        );
    }

    #[test]
    fn words() {
        assert_eq!(split("a b  c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split(r#"sh -c 'echo "hi there"'"#).unwrap(),
            ["sh", "-c", r#"echo "hi there""#]
        );
        assert_eq!(
            split(r#"x "a\"b" c\ d ''"#).unwrap(),
            ["x", "a\"b", "c d", ""]
        );
        assert!(split("echo 'oops").is_err());
        assert!(split("").unwrap().is_empty());
    }
}
