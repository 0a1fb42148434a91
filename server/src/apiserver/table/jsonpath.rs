//! The JSONPath subset CRD `additionalPrinterColumns` use (upstream evaluates them with
//! `k8s.io/client-go/util/jsonpath`, missing keys allowed): `.a.b`, `['a.b']`, `.a\.b`,
//! `[0]`, `[-1]`, `[*]`, `.*`, `..name`, and filters `[?(@.type=="Ready")]` with
//! `==`, `!=`, `<`, `<=`, `>`, `>=` or a bare existence test `[?(@.a)]`.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct JsonPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    Recursive(String),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<Segment>,
    test: Option<(Cmp, Literal)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl JsonPath {
    /// Parses a path such as `.status.conditions[?(@.type=="Ready")].status`
    /// (surrounding `{}` and a leading `$` are accepted).
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut t = text.trim();
        if let Some(inner) = t.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            t = inner.trim();
        }
        t = t.strip_prefix('$').unwrap_or(t);
        let segments =
            parse_segments(t).ok_or_else(|| format!("unrecognized column definition {text:?}"))?;
        Ok(JsonPath { segments })
    }

    /// Every value the path selects in `root`, in document order.
    pub(super) fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval(&self.segments, root)
    }
}

fn parse_segments(t: &str) -> Option<Vec<Segment>> {
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    let mut segments = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' if chars.get(i + 1) == Some(&'.') => {
                let (name, next) = read_name(&chars, i + 2);
                if name.is_empty() {
                    return None;
                }
                segments.push(Segment::Recursive(name));
                i = next;
            }
            '.' if chars.get(i + 1) == Some(&'*') => {
                segments.push(Segment::Wildcard);
                i += 2;
            }
            '.' => {
                let (name, next) = read_name(&chars, i + 1);
                if !name.is_empty() {
                    segments.push(Segment::Field(name));
                }
                i = next;
            }
            '[' => {
                let close = find_bracket_end(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                segments.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            _ => {
                // A path may start without a dot (`metadata.name` inside filters).
                let (name, next) = read_name(&chars, i);
                if name.is_empty() {
                    return None;
                }
                segments.push(Segment::Field(name));
                i = next;
            }
        }
    }
    Some(segments)
}

/// Reads a field name up to the next unescaped `.` or `[` (`\.` is a literal dot).
fn read_name(chars: &[char], mut i: usize) -> (String, usize) {
    let mut name = String::new();
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                name.push(chars[i + 1]);
                i += 2;
            }
            '.' | '[' => break,
            c => {
                name.push(c);
                i += 1;
            }
        }
    }
    (name, i)
}

/// The index of the `]` closing the bracket opened at `open`, skipping quoted text.
fn find_bracket_end(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Option<Segment> {
    if inner == "*" {
        return Some(Segment::Wildcard);
    }
    if let Some(quoted) = unquote(inner) {
        return Some(Segment::Field(quoted));
    }
    if let Some(expr) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
        return parse_filter(expr.trim()).map(Segment::Filter);
    }
    inner.parse::<i64>().ok().map(Segment::Index)
}

fn unquote(s: &str) -> Option<String> {
    let first = s.chars().next()?;
    if (first == '\'' || first == '"') && s.len() >= 2 && s.ends_with(first) {
        Some(s[1..s.len() - 1].to_string())
    } else {
        None
    }
}

fn parse_filter(expr: &str) -> Option<Filter> {
    let expr = expr.strip_prefix('@')?;
    let ops = [
        ("==", Cmp::Eq),
        ("!=", Cmp::Ne),
        ("<=", Cmp::Le),
        (">=", Cmp::Ge),
        ("<", Cmp::Lt),
        (">", Cmp::Gt),
    ];
    let found = ops
        .iter()
        .filter_map(|(tok, cmp)| expr.find(tok).map(|at| (at, *tok, *cmp)))
        .min_by_key(|(at, tok, _)| (*at, usize::MAX - tok.len()));
    let Some((at, tok, cmp)) = found else {
        return Some(Filter {
            path: parse_segments(expr.trim())?,
            test: None,
        });
    };
    let path = parse_segments(expr[..at].trim())?;
    let raw = expr[at + tok.len()..].trim();
    let literal = match raw {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        _ => match unquote(raw) {
            Some(s) => Literal::Str(s),
            None => raw
                .parse::<f64>()
                .map(Literal::Num)
                .unwrap_or_else(|_| Literal::Str(raw.to_string())),
        },
    };
    Some(Filter {
        path,
        test: Some((cmp, literal)),
    })
}

fn eval<'a>(segments: &[Segment], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for segment in segments {
        let mut next = Vec::new();
        for v in current {
            match segment {
                Segment::Field(name) => next.extend(v.get(name.as_str())),
                Segment::Index(i) => {
                    if let Some(items) = v.as_array() {
                        let len = items.len() as i64;
                        let at = if *i < 0 { len + i } else { *i };
                        if (0..len).contains(&at) {
                            next.extend(usize::try_from(at).ok().and_then(|at| items.get(at)));
                        }
                    }
                }
                Segment::Wildcard => match v {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Segment::Recursive(name) => collect_recursive(v, name, &mut next),
                Segment::Filter(filter) => {
                    if let Some(items) = v.as_array() {
                        next.extend(items.iter().filter(|item| filter_matches(filter, item)));
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn collect_recursive<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(map) => {
            if let Some(found) = map.get(name) {
                out.push(found);
            }
            for child in map.values() {
                collect_recursive(child, name, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|child| collect_recursive(child, name, out)),
        _ => {}
    }
}

fn filter_matches(filter: &Filter, item: &Value) -> bool {
    let found = eval(&filter.path, item);
    let Some((cmp, literal)) = &filter.test else {
        return !found.is_empty();
    };
    let [left] = found.as_slice() else {
        return false;
    };
    let ordering = match (left, literal) {
        (Value::String(a), Literal::Str(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Number(a), Literal::Num(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match (cmp, ordering) {
        (Cmp::Ne, None) => true,
        (_, None) => false,
        (Cmp::Eq, Some(o)) => o == Ordering::Equal,
        (Cmp::Ne, Some(o)) => o != Ordering::Equal,
        (Cmp::Lt, Some(o)) => o == Ordering::Less,
        (Cmp::Le, Some(o)) => o != Ordering::Greater,
        (Cmp::Gt, Some(o)) => o == Ordering::Greater,
        (Cmp::Ge, Some(o)) => o != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn find(path: &str, v: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(v)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn fields_indexes_and_filters() {
        let v = json!({
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [
                {"type": "Synced", "status": "True", "n": 1},
                {"type": "Ready", "status": "False", "n": 2}
            ]}
        });
        assert_eq!(find(".spec.replicas", &v), [json!(3)]);
        assert_eq!(find("{.spec.replicas}", &v), [json!(3)]);
        assert_eq!(find("$.metadata.name", &v), [json!("x")]);
        assert_eq!(
            find(".status.conditions[?(@.type==\"Ready\")].status", &v),
            [json!("False")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type=='Synced')].status", &v),
            [json!("True")]
        );
        assert_eq!(
            find(".status.conditions[?(@.n > 1)].type", &v),
            [json!("Ready")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type != \"Ready\")].type", &v),
            [json!("Synced")]
        );
        assert_eq!(find(".spec.ports[1].port", &v), [json!(443)]);
        assert_eq!(find(".spec.ports[-1].port", &v), [json!(443)]);
        assert_eq!(find(".spec.ports[*].port", &v), [json!(80), json!(443)]);
        assert_eq!(
            find(".metadata.labels['app.kubernetes.io/name']", &v),
            [json!("web")]
        );
        assert_eq!(
            find(".metadata.labels.app\\.kubernetes\\.io/name", &v),
            [json!("web")]
        );
        assert_eq!(find("..port", &v), [json!(80), json!(443)]);
        assert_eq!(
            find(".status.conditions[?(@.n)].n", &v),
            [json!(1), json!(2)]
        );
        assert!(find(".spec.missing.deep", &v).is_empty());
        assert!(find(".spec.ports[5]", &v).is_empty());
        assert!(JsonPath::parse(".a[").is_err());
    }
}
