//! Query strings as Go's `url.ParseQuery` reads them (`+` is a space,
//! `%XX` escapes), and values as kubelet converts them.

/// The decoded parameters of a query string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `query` (without the `?`); malformed escapes are kept as
    /// written.
    pub fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .unwrap_or_default()
            .split(['&', ';'])
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter as `strconv.ParseBool` reads it (`1`, `t`,
    /// `true`, ...); absent is false; anything else is an error.
    pub fn flag(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            None | Some("") => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(format!(
                "invalid value {other:?} for query parameter {name:?}: expected a boolean"
            )),
        }
    }

    /// An integer parameter; absent is `None`.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, String> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                format!("invalid value {text:?} for query parameter {name:?}: expected an integer")
            }),
        }
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_as_go_decodes_them() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo+hi%21&stdin=1&tty=true&x=%zz&port=80&port=8080",
        ));
        assert_eq!(q.all("command"), ["sh", "-c", "echo hi!"]);
        assert_eq!(q.flag("stdin"), Ok(true));
        assert_eq!(q.flag("tty"), Ok(true));
        assert_eq!(q.flag("stderr"), Ok(false));
        assert_eq!(q.get("x"), Some("%zz"));
        assert_eq!(q.all("port"), ["80", "8080"]);
        assert!(Query::parse(Some("follow=maybe")).flag("follow").is_err());
        assert_eq!(Query::parse(Some("a=%4")).get("a"), Some("%4"));
        assert_eq!(
            Query::parse(Some("tailLines=10")).integer("tailLines"),
            Ok(Some(10))
        );
        assert!(
            Query::parse(Some("tailLines=x"))
                .integer("tailLines")
                .is_err()
        );
        assert_eq!(Query::parse(None), Query::default());
    }
}
