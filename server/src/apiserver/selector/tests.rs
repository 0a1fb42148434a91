//! Label selector parsing, matching and errors against upstream's behaviour.

use serde_json::json;

use super::*;

fn labels(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn parses_every_operator_and_prints_sorted() {
    let s = LabelSelector::parse("z=b, c!=d,e in (y,x),f notin (z),g,!h,i==j,k>3,l<10").unwrap();
    assert_eq!(
        s.to_string(),
        "c!=d,e in (x,y),f notin (z),g,!h,i==j,k>3,l<10,z=b"
    );
    let ops: Vec<_> = s.requirements().iter().map(|r| r.operator()).collect();
    assert_eq!(
        ops,
        [
            Operator::NotEquals,
            Operator::In,
            Operator::NotIn,
            Operator::Exists,
            Operator::DoesNotExist,
            Operator::DoubleEquals,
            Operator::GreaterThan,
            Operator::LessThan,
            Operator::Equals,
        ]
    );
}

#[test]
fn empty_and_odd_value_sets() {
    assert!(LabelSelector::parse("").unwrap().is_empty());
    assert!(LabelSelector::parse("  ").unwrap().is_empty());
    let s = LabelSelector::parse("x in (foo,,baz),y,z notin ()").unwrap();
    assert_eq!(s.to_string(), "x in (,baz,foo),y,z notin ()");
    // `in` is a plain value where a value is expected.
    let s = LabelSelector::parse("a in (in,notin),b=in").unwrap();
    assert_eq!(s.to_string(), "a in (in,notin),b=in");
    assert_eq!(LabelSelector::parse("a=").unwrap().to_string(), "a=");
    assert_eq!(
        LabelSelector::parse("example.com/app=web")
            .unwrap()
            .requirements()[0]
            .key(),
        "example.com/app"
    );
}

#[test]
fn matches_like_upstream() {
    let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
    let yes = [
        "app=web",
        "app==web",
        "app!=db",
        "app in (web,db)",
        "x notin (a)",
        "app",
        "!x",
        "n>4",
        "n<6",
        "",
    ];
    for s in yes {
        assert!(
            LabelSelector::parse(s).unwrap().matches(&l),
            "{s} should match"
        );
    }
    let no = [
        "app=db",
        "app!=web",
        "app in (db)",
        "app notin (web)",
        "x",
        "!app",
        "n>5",
        "app>1",
        "tier=front,app=db",
    ];
    for s in no {
        assert!(
            !LabelSelector::parse(s).unwrap().matches(&l),
            "{s} should not match"
        );
    }
    let obj = json!({"metadata": {"labels": {"app": "web"}}});
    assert!(
        LabelSelector::parse("app=web")
            .unwrap()
            .matches_object(&obj)
    );
    assert!(
        LabelSelector::parse("!app")
            .unwrap()
            .matches_object(&json!({"metadata": {}}))
    );
}

#[test]
fn syntax_errors_are_worded_as_upstream() {
    let err = |s: &str| LabelSelector::parse(s).unwrap_err().to_string();
    assert_eq!(err("a=c b"), "found 'b', expected: ',' or 'end of string'");
    assert_eq!(
        err("a b"),
        "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    );
    assert_eq!(
        err(",a"),
        "found ',', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(err("a,"), "found '', expected: identifier after ','");
    assert_eq!(
        err("a in b"),
        "unable to parse requirement: found 'b' expected: '('"
    );
    assert_eq!(
        err("a in (b c)"),
        "unable to parse requirement: found 'c', expected: ',' or ')'"
    );
    assert_eq!(
        err("a in (b"),
        "unable to parse requirement: found '', expected: ',' or ')'"
    );
    assert_eq!(
        err("a=(b)"),
        "unable to parse requirement: found '(', expected: identifier"
    );
    assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
    assert_eq!(
        err("=a"),
        "found '=', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(
        err("a notin"),
        "unable to parse requirement: found '' expected: '('"
    );
    assert_eq!(
        err("a in (=)"),
        "unable to parse requirement: found '=', expected: ',', ')' or identifier"
    );
}

#[test]
fn validation_errors_are_worded_as_upstream() {
    let err = |s: &str| LabelSelector::parse(s).unwrap_err().to_string();
    assert_eq!(
        err("a/b/c=x"),
        "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of \
         alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character \
         (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
         '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' \
         (e.g. 'example.com/MyName')"
    );
    assert_eq!(
        err("-a=x"),
        "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric \
         characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  \
         or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
    assert_eq!(
        err("app=a/b"),
        "unable to parse requirement: values[0][app]: Invalid value: \"a/b\": a valid label must be an empty \
         string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
         alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    assert_eq!(
        err("n>x"),
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value \
         must be an integer"
    );
    assert!(err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 characters"));
    assert!(err("Example.com/a=b").contains("prefix part a lowercase RFC 1123 subdomain"));
}

#[test]
fn from_label_selector_object() {
    let sel = json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "app", "operator": "Exists"}
        ]
    });
    let s = LabelSelector::from_object(&sel).unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,app,!canary,env notin (prod),tier in (a,b)"
    );
    assert!(s.matches(&labels(json!({"app": "web", "tier": "a"}))));
    assert!(!s.matches(&labels(json!({"app": "web", "tier": "c"}))));
    assert!(!s.matches(&labels(json!({"app": "web", "tier": "a", "canary": "1"}))));

    let nothing = LabelSelector::from_object(&Value::Null).unwrap();
    assert!(nothing.matches_nothing() && !nothing.matches(&Map::new()));
    assert_eq!(nothing.to_string(), "");
    let all = LabelSelector::from_object(&json!({})).unwrap();
    assert!(all.is_empty() && all.matches(&Map::new()));

    let bad = json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]});
    assert_eq!(
        LabelSelector::from_object(&bad).unwrap_err().to_string(),
        "\"Foo\" is not a valid label selector operator"
    );
    let bad = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
    assert_eq!(
        LabelSelector::from_object(&bad).unwrap_err().to_string(),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
    );
    let bad =
        json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]});
    assert_eq!(
        LabelSelector::from_object(&bad).unwrap_err().to_string(),
        "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist"
    );
}

#[test]
fn from_map_selects_exactly() {
    let s = LabelSelector::from_map(&labels(json!({"b": "2", "a": "1"})));
    assert_eq!(s.to_string(), "a=1,b=2");
    assert!(s.matches(&labels(json!({"a": "1", "b": "2", "c": "3"}))));
    assert!(LabelSelector::from_map(&Map::new()).is_empty());
}
