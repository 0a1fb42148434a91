//! `$(VAR)` expansion in env values, commands, args and `subPathExpr`, with
//! Kubernetes' rules: `$$` is a literal `$`, a reference to an undefined
//! variable stays as written, and a lone `$` is kept.

/// Expands `$(NAME)` in `input` with `lookup`.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(value) => out.push_str(value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // A `$` that starts no expression: keep it and the
                    // character after it.
                    let ch_len = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..ch_len]);
                    ch_len
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

/// Expands every string of `list` against `vars` (name, value) pairs;
/// later pairs win.
pub fn expand_all(list: &[String], vars: &[(String, String)]) -> Vec<String> {
    list.iter()
        .map(|s| expand(s, |name| find(vars, name)))
        .collect()
}

/// The value of `name` in `vars`, the last definition winning.
pub fn find<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("VAR_A".into(), "A".into()),
            ("VAR_B".into(), "B".into()),
            ("VAR_EMPTY".into(), String::new()),
        ]
    }

    fn x(input: &str) -> String {
        let v = vars();
        expand(input, |name| find(&v, name))
    }

    #[test]
    fn expands_as_kubernetes_does() {
        assert_eq!(x("$(VAR_A)"), "A");
        assert_eq!(x("___$(VAR_A)___"), "___A___");
        assert_eq!(x("$(VAR_A)-$(VAR_B)"), "A-B");
        assert_eq!(x("$(VAR_EMPTY)x"), "x");
        assert_eq!(x("$(UNKNOWN)"), "$(UNKNOWN)");
        assert_eq!(x("$$(VAR_A)"), "$(VAR_A)");
        assert_eq!(x("$$$(VAR_A)"), "$A");
        assert_eq!(x("$$$$(VAR_A)"), "$$(VAR_A)");
        assert_eq!(x("$(VAR_A"), "$(VAR_A");
        assert_eq!(x("$VAR_A"), "$VAR_A");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$"), "$");
        assert_eq!(x("$()"), "$()");
        assert_eq!(x("€$(VAR_A)€"), "€A€");
        assert_eq!(x("$€"), "$€");
        assert_eq!(x("no refs"), "no refs");
    }

    #[test]
    fn later_definitions_win() {
        let v = vec![
            ("X".to_string(), "1".to_string()),
            ("X".to_string(), "2".to_string()),
        ];
        assert_eq!(expand_all(&["$(X)".into()], &v), ["2"]);
    }
}
