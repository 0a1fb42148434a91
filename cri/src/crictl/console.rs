//! Where `skiff crictl` writes: results to stdout, and log lines to stderr
//! formatted as crictl's logrus does — `FATA[0000] message` on a terminal,
//! `time="…" level=fatal msg="…"` otherwise — so scripts that parse
//! crictl's errors keep working.

use std::io::{self, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tonic::{Code, Status};

/// A log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `DEBU`, only with `--debug`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERRO`.
    Error,
    /// `FATA`: the command failed.
    Fatal,
}

impl Level {
    fn short(self) -> &'static str {
        match self {
            Self::Debug => "DEBU",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERRO",
            Self::Fatal => "FATA",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warning",
            Self::Error => "error",
            Self::Fatal => "fatal",
        }
    }

    fn color(self) -> u8 {
        match self {
            Self::Debug => 37,
            Self::Info => 36,
            Self::Warn => 33,
            Self::Error | Self::Fatal => 31,
        }
    }
}

/// stdout and stderr of one crictl run.
pub struct Console<'a> {
    /// Command output.
    pub out: &'a mut (dyn Write + Send),
    err: &'a mut (dyn Write + Send),
    started: Instant,
    terminal: bool,
    /// Whether `DEBU` lines are shown.
    pub debug: bool,
}

impl std::fmt::Debug for Console<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("terminal", &self.terminal)
            .field("debug", &self.debug)
            .finish_non_exhaustive()
    }
}

impl<'a> Console<'a> {
    /// A console writing to `out` and `err`; `terminal` says whether `err`
    /// is a terminal (colored, short log lines).
    pub fn new(
        out: &'a mut (dyn Write + Send),
        err: &'a mut (dyn Write + Send),
        terminal: bool,
    ) -> Self {
        Self {
            out,
            err,
            started: Instant::now(),
            terminal,
            debug: false,
        }
    }

    /// Whether stderr is a terminal (progress bars go there).
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Writes `text` to stdout as is.
    pub fn print(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())
    }

    /// Writes a log line to stderr (debug lines only with `--debug`).
    pub fn log(&mut self, level: Level, message: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let message = message.trim_end_matches('\n');
        let line = if self.terminal {
            let seconds = self.started.elapsed().as_secs();
            format!(
                "\x1b[{}m{}\x1b[0m[{seconds:04}] {message:<44} \n",
                level.color(),
                level.short()
            )
        } else {
            format!(
                "time={} level={} msg={}\n",
                logfmt_value(&rfc3339_now()),
                level.name(),
                logfmt_value(message)
            )
        };
        // Nothing sensible is left to do if stderr is gone.
        let _ = self.err.write_all(line.as_bytes());
        let _ = self.err.flush();
    }

    /// Writes stderr text as is (prompts, help).
    pub fn print_err(&mut self, text: &str) {
        self.write_err(text.as_bytes());
    }

    /// Writes bytes to stderr as they are (a container's stderr).
    pub fn write_err(&mut self, bytes: &[u8]) {
        let _ = self.err.write_all(bytes);
        let _ = self.err.flush();
    }
}

/// A gRPC status as Go's gRPC prints it, which crictl users grep for:
/// `rpc error: code = NotFound desc = …`.
pub fn rpc_error(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        go_code_name(status.code()),
        status.message()
    )
}

fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// A logfmt value as logrus writes it: bare when it is made of safe
/// characters, otherwise quoted like Go's `%q`.
fn logfmt_value(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if safe {
        value.to_owned()
    } else {
        go_quote(value)
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The current UTC time in RFC 3339, as logrus stamps non-terminal lines.
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let rem = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_print_as_go_grpc_errors() {
        let status = Status::not_found("manifest unknown");
        assert_eq!(
            rpc_error(&status),
            "rpc error: code = NotFound desc = manifest unknown"
        );
        assert_eq!(
            rpc_error(&Status::cancelled("x")),
            "rpc error: code = Canceled desc = x"
        );
    }

    #[test]
    fn terminal_lines_look_like_logrus() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut console = Console::new(&mut out, &mut err, true);
        console.log(Level::Fatal, "no such image \"x\" present");
        console.log(Level::Debug, "hidden");
        let text = String::from_utf8(err).unwrap();
        // logrus pads the message to 44 columns and adds a space.
        let message = format!("{:<44} ", "no such image \"x\" present");
        assert_eq!(message.len(), 45);
        assert_eq!(text, format!("\x1b[31mFATA\x1b[0m[0000] {message}\n"));
    }

    #[test]
    fn piped_lines_are_logfmt() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut console = Console::new(&mut out, &mut err, false);
        console.log(Level::Error, "no such image busybox");
        let text = String::from_utf8(err).unwrap();
        assert!(text.starts_with("time=\""), "{text}");
        assert!(
            text.ends_with("Z\" level=error msg=\"no such image busybox\"\n"),
            "{text}"
        );
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn logfmt_quotes_only_when_needed() {
        assert_eq!(logfmt_value("fatal"), "fatal");
        assert_eq!(logfmt_value("a b"), "\"a b\"");
        assert_eq!(logfmt_value("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
