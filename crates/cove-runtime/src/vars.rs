//! A replica's variables as a list of pairs: the value of one (the last
//! wins) and `$NAME` expanded where `NAME` is one of them. A leaf: the
//! plan, health checks and recipes read replicas' variables with it.

/// The value of `name` in `env`; the last one wins, as in a process's
/// environment built by pushing.
pub fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether [`expand_known`] replaces something in `s` with the value of
/// variable `name`.
pub fn names_variable(s: &str, name: &str) -> bool {
    expand_known(s, &[(name.to_string(), "\0".to_string())]) != s
}

/// Replaces `$NAME` / `${NAME}` when `NAME` is in `env`; leaves the rest.
pub fn expand_known(s: &str, env: &[(String, String)]) -> String {
    let lookup = |n: &str| env_value(env, n);
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' && chars.get(i + 1) == Some(&'$') {
            out.push_str("$$");
            i += 2;
            continue;
        }
        if chars[i] == '$' {
            let braced = chars.get(i + 1) == Some(&'{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut j = start;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            let closed = !braced || chars.get(j) == Some(&'}');
            if let (Some(v), true, false) = (lookup(&name), closed, name.is_empty()) {
                out.push_str(v);
                i = if braced { j + 1 } else { j };
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_is_named_where_it_would_be_expanded() {
        assert!(names_variable("--password=$PASS", "PASS"));
        assert!(names_variable("${PASS}", "PASS"));
        assert!(
            !names_variable("$$PASS", "PASS"),
            "`$$` is passed on as it is"
        );
        assert!(!names_variable("$PASSWORD $PAS ${PASS", "PASS"));
        assert!(!names_variable("$COVE_SECRETS/pass", "PASS"));
    }

    #[test]
    fn only_known_variables_are_expanded_in_commands() {
        let env = vec![
            ("PORT".to_string(), "80".to_string()),
            ("HOST".to_string(), "127.64.1.1".to_string()),
        ];
        assert_eq!(
            expand_known("--bind $HOST:${PORT}", &env),
            "--bind 127.64.1.1:80"
        );
        assert_eq!(
            expand_known("echo $$ $i ${X:-y} $ end$", &env),
            "echo $$ $i ${X:-y} $ end$"
        );
        assert_eq!(expand_known("$PORTS ${PORT", &env), "$PORTS ${PORT");
    }
}
