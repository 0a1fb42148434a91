//! What a Wasm container's child tells the shim on its ready pipe, once:
//! `ok <cache outcome> <phases>[ <note>]` when the guest waits for start, or
//! `error <invalid|internal> <message>` when setting up failed.

use crate::protocol::ErrorKind;

/// A child's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Ready: how the code was loaded, and why the cache was bypassed.
    Ready {
        /// `hit`, `compiled`, `replaced` or `uncached`.
        cache: String,
        /// How long each setup step took, e.g. `cgroup=1.20ms,load=0.31ms`
        /// (no spaces).
        phases: String,
        /// Cache trouble worth a log line.
        note: Option<String>,
    },
    /// Setting up failed.
    Failed {
        /// Whether the bundle or module is at fault (else the host).
        invalid: bool,
        /// What failed.
        message: String,
    },
}

impl Report {
    /// The line written on the pipe.
    pub fn encode(&self) -> String {
        match self {
            Report::Ready {
                cache,
                phases,
                note: None,
            } => format!("ok {cache} {phases}"),
            Report::Ready {
                cache,
                phases,
                note: Some(note),
            } => format!("ok {cache} {phases} {note}"),
            Report::Failed { invalid, message } => {
                let kind = if *invalid { "invalid" } else { "internal" };
                format!("error {kind} {message}")
            }
        }
    }

    /// Reads what the child wrote (`None`: nothing, it died first).
    pub fn parse(text: &str) -> Option<Report> {
        let text = text.trim_end();
        if let Some(rest) = text.strip_prefix("ok ") {
            let mut parts = rest.splitn(3, ' ');
            let cache = parts.next()?.to_owned();
            let phases = parts.next().unwrap_or_default().to_owned();
            let note = parts.next().map(str::to_owned);
            return Some(Report::Ready {
                cache,
                phases,
                note,
            });
        }
        let rest = text.strip_prefix("error ")?;
        let (kind, message) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(Report::Failed {
            invalid: kind == "invalid",
            message: message.to_owned(),
        })
    }

    /// The protocol error class of a failure.
    pub fn kind(invalid: bool) -> ErrorKind {
        if invalid {
            ErrorKind::InvalidArgument
        } else {
            ErrorKind::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for report in [
            Report::Ready {
                cache: "hit".into(),
                phases: "cgroup=1.20ms,load=0.31ms".into(),
                note: None,
            },
            Report::Ready {
                cache: "replaced".into(),
                phases: "load=9.00ms".into(),
                note: Some("/c/k.cwasm: bad header".into()),
            },
            Report::Failed {
                invalid: true,
                message: "the module does not export \"_start\"".into(),
            },
            Report::Failed {
                invalid: false,
                message: "joining cgroup /p/c: EPERM\nsecond line".into(),
            },
        ] {
            assert_eq!(Report::parse(&report.encode()), Some(report));
        }
        assert_eq!(Report::parse(""), None);
        assert_eq!(Report::parse("garbage"), None);
    }
}
