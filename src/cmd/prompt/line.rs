//! Splitting what the user typed: commands separated by `;` or newlines, words with
//! sh-like quoting; and relative znode paths resolved against the current node.

/// The commands of `text`, each as its words. `'...'` keeps everything, `"..."` allows
/// `\"` and `\\`, a backslash outside quotes escapes the next character, `#` at the start
/// of a word comments out the rest of the line.
pub fn split(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ';' | '\n' => {
                words.extend(word.take());
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => words.extend(word.take()),
            '#' if word.is_none() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => w.extend(chars.next()),
                        Some(c) => w.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a backslash at the end".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word.take());
    if !words.is_empty() {
        commands.push(words);
    }
    Ok(commands)
}

/// `input` against the current node `cwd`: absolute as is, else relative (`.`, `..`).
pub fn resolve(cwd: &str, input: &str) -> String {
    crate::cmd::inspect::model::resolve(cwd, input)
}

/// A word as it has to be typed to come back as itself from [`split`].
pub fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_alphanumeric() || "/._-:=,@+%".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter().map(|c| c.iter().map(|w| w.to_string()).collect()).collect()
    }

    #[test]
    fn splits_commands_and_words() {
        assert_eq!(split("ls /; get -s a").unwrap(), s(&[&["ls", "/"], &["get", "-s", "a"]]));
        assert_eq!(
            split("create /x 'a b;c'\nset /x \"q\\\"d\"").unwrap(),
            s(&[&["create", "/x", "a b;c"], &["set", "/x", "q\"d"]])
        );
        assert_eq!(split("  # a comment\nls # trailing\n\n;;").unwrap(), s(&[&["ls"]]));
        assert_eq!(split("set /x ''").unwrap(), s(&[&["set", "/x", ""]]));
        assert_eq!(split("a\\ b").unwrap(), s(&[&["a b"]]));
        assert!(split("get 'x").is_err());
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("/a/b"), "/a/b");
    }

    #[test]
    fn resolves_relative_paths() {
        assert_eq!(resolve("/app", "config"), "/app/config");
        assert_eq!(resolve("/app", "../x/./y"), "/x/y");
        assert_eq!(resolve("/app", "/abs"), "/abs");
        assert_eq!(resolve("/", ".."), "/");
    }
}
