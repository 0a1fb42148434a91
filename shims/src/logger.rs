//! The shim's own log (`shim.log`): a minimal `tracing` subscriber writing
//! plain lines, so a shim does not carry `tracing-subscriber`'s machinery.
//! It also catches libcontainer's and libcgroups' warnings, which often say
//! more than the errors they return.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::crilog::format_timestamp;

/// Past this size the log starts over, so a misbehaving pod cannot fill the disk.
const MAX_LOG_BYTES: u64 = 4 << 20;

/// Writes events to a file, one line each.
#[derive(Debug)]
pub struct FileLogger {
    file: Mutex<File>,
    written: AtomicU64,
    ours: Level,
    theirs: Level,
}

impl FileLogger {
    /// Logs this crate at info (debug when `debug`) and other crates at
    /// warn (info when `debug`).
    pub fn new(file: File, debug: bool) -> Self {
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        FileLogger {
            file: Mutex::new(file),
            written: AtomicU64::new(written),
            ours: if debug { Level::DEBUG } else { Level::INFO },
            theirs: if debug { Level::INFO } else { Level::WARN },
        }
    }

    /// Installs this logger for the process; false when one already was.
    pub fn install(self) -> bool {
        tracing::subscriber::set_global_default(self).is_ok()
    }
}

impl Subscriber for FileLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let limit = if metadata.target().starts_with("skiff_shims") {
            self.ours
        } else {
            self.theirs
        };
        *metadata.level() <= limit
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(
            self.ours.max(self.theirs),
        ))
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are not recorded; every span shares one id.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut line = Vec::with_capacity(160);
        format_timestamp(SystemTime::now(), &mut line);
        let mut text = format!(" {} {}:", metadata.level(), metadata.target());
        event.record(&mut LineVisitor(&mut text));
        text.push('\n');
        line.extend_from_slice(text.as_bytes());
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        let total = self.written.fetch_add(line.len() as u64, Ordering::Relaxed);
        if total > MAX_LOG_BYTES && file.set_len(0).is_ok() {
            self.written.store(line.len() as u64, Ordering::Relaxed);
        }
        // Nowhere to report a failed log write.
        let _ = file.write_all(&line);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

struct LineVisitor<'a>(&'a mut String);

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_lines_with_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.log");
        let logger = FileLogger::new(File::create(&path).unwrap(), false);
        tracing::subscriber::with_default(logger, || {
            tracing::info!(container_id = "c1", code = 3, "container exited");
            tracing::debug!("not at info");
            tracing::info!(target: "libcontainer::process", "too chatty");
            tracing::warn!(target: "libcontainer::process", "worth keeping");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(
                r#" INFO skiff_shims::logger::tests: container exited container_id="c1" code=3"#
            ),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with("WARN libcontainer::process: worth keeping"));
    }
}
