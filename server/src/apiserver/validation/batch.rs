//! Jobs and CronJobs (`pkg/apis/batch/validation`).

use serde_json::Value;

use super::cause::{
    Errs, child, field, flag, go_quote, go_value, int, invalid, nonnegative, not_supported, opt_s,
    required, s, semantic,
};
use super::cron::parse_standard;
use super::meta::{go_label_selector, label_selector, selector_is_empty, selector_matches};
use super::pods::{pod_template, selector_mismatch};

/// A batch/v1 Job (create, or update when `old` is given).
pub(super) fn job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    job_spec(spec, "spec", errs);
    let template = spec.get("template").unwrap_or(&Value::Null);
    match field(spec, "selector") {
        // The server generates the selector unless the client asked to
        // manage it.
        None if flag(spec, "manualSelector") => required(errs, "spec.selector", ""),
        None => {}
        Some(sel) => {
            label_selector(Some(sel), "spec.selector", errs);
            match selector_matches(sel, template.get("metadata").and_then(|m| m.get("labels"))) {
                Some(_) if selector_is_empty(sel) => required(errs, "spec.selector", ""),
                Some(false) => selector_mismatch(template, "spec.template", errs),
                _ => {}
            }
        }
    }
    let Some(old) = old else {
        return;
    };
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    if field(spec, "selector") != field(old_spec, "selector") {
        invalid(
            errs,
            "spec.selector",
            go_label_selector(field(spec, "selector")),
            "field is immutable",
        );
    }
    let indexed = s(spec, "completionMode") == "Indexed";
    let elastic = indexed && int(spec, "completions") == int(spec, "parallelism");
    if !elastic && field(spec, "completions") != field(old_spec, "completions") {
        invalid(
            errs,
            "spec.completions",
            go_value(field(spec, "completions")),
            "field is immutable",
        );
    }
    if field(spec, "completionMode") != field(old_spec, "completionMode") {
        invalid(
            errs,
            "spec.completionMode",
            go_value(field(spec, "completionMode")),
            "field is immutable",
        );
    }
    let mut new_template = semantic(template);
    let old_template = semantic(old_spec.get("template").unwrap_or(&Value::Null));
    if flag(spec, "suspend")
        && old
            .get("status")
            .and_then(|st| st.get("startTime"))
            .is_none_or(Value::is_null)
    {
        // A suspended job that never started may change where its pods run.
        for (section, names) in [
            ("metadata", &["labels", "annotations"][..]),
            (
                "spec",
                &["nodeSelector", "affinity", "tolerations", "schedulingGates"][..],
            ),
        ] {
            for name in names {
                let from = old_template
                    .get(section)
                    .and_then(|m| m.get(*name))
                    .cloned();
                if let Some(part) = new_template.get_mut(section).and_then(Value::as_object_mut) {
                    match from {
                        Some(v) => {
                            part.insert((*name).to_owned(), v);
                        }
                        None => {
                            part.remove(*name);
                        }
                    }
                }
            }
        }
        new_template = semantic(&new_template);
    }
    if new_template != old_template {
        invalid(
            errs,
            "spec.template",
            go_value(spec.get("template")),
            "field is immutable",
        );
    }
}

/// `validateJobSpec` at `path` (`spec`, or a CronJob's `spec.jobTemplate.spec`).
fn job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    for name in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        nonnegative(errs, &child(path, name), int(spec, name));
    }
    if let Some(mode) = opt_s(spec, "completionMode") {
        match mode {
            "NonIndexed" => {}
            "Indexed" => {
                if field(spec, "completions").is_none() {
                    required(
                        errs,
                        &child(path, "completions"),
                        "when completion mode is Indexed",
                    );
                }
            }
            other => not_supported(
                errs,
                &child(path, "completionMode"),
                go_quote(other),
                &["NonIndexed", "Indexed"],
            ),
        }
    }
    let template = spec.get("template").unwrap_or(&Value::Null);
    let template_path = child(path, "template");
    pod_template(template, &template_path, &[], errs);
    let policy_path = child(&template_path, "spec.restartPolicy");
    let template_spec = template.get("spec").unwrap_or(&Value::Null);
    match s(template_spec, "restartPolicy") {
        "Always" | "" => required(errs, &policy_path, "valid values: \"OnFailure\", \"Never\""),
        "OnFailure" if field(spec, "podFailurePolicy").is_some() => {
            invalid(
                errs,
                &policy_path,
                "\"OnFailure\"",
                "only \"Never\" is supported when podFailurePolicy is specified",
            );
        }
        "OnFailure" | "Never" => {}
        other => not_supported(errs, &policy_path, go_quote(other), &["OnFailure", "Never"]),
    }
}

/// A batch/v1 CronJob.
pub(super) fn cron_job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let name = obj.get("metadata").map(|m| s(m, "name")).unwrap_or("");
    if name.len() > 52 {
        invalid(
            errs,
            "metadata.name",
            go_quote(name),
            "must be no more than 52 characters",
        );
    }
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let schedule = s(spec, "schedule");
    if schedule.is_empty() {
        required(errs, "spec.schedule", "");
    } else {
        if let Err(msg) = parse_standard(schedule) {
            invalid(errs, "spec.schedule", go_quote(schedule), &msg);
        }
        // A stored schedule with TZ keeps working; new ones use timeZone.
        let old_tz = old
            .and_then(|o| o.get("spec"))
            .is_some_and(|o| s(o, "schedule").contains("TZ"));
        if schedule.contains("TZ") && !old_tz {
            invalid(
                errs,
                "spec.schedule",
                go_quote(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            );
        } else if schedule.contains("TZ") && field(spec, "timeZone").is_some() {
            invalid(
                errs,
                "spec.schedule",
                go_quote(schedule),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            );
        }
    }
    if let Some(zone) = opt_s(spec, "timeZone") {
        let ok_part = |p: &str| {
            p != "."
                && p != ".."
                && !p.starts_with('-')
                && (1..=14).contains(&p.len())
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'))
        };
        if zone.is_empty() {
            invalid(
                errs,
                "spec.timeZone",
                go_quote(zone),
                "timeZone must be nil or non-empty string",
            );
        } else if !zone.split('/').all(ok_part) {
            invalid(
                errs,
                "spec.timeZone",
                go_quote(zone),
                &format!("unknown time zone {zone}"),
            );
        } else if zone.eq_ignore_ascii_case("local") {
            invalid(
                errs,
                "spec.timeZone",
                go_quote(zone),
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            );
        }
    }
    nonnegative(
        errs,
        "spec.startingDeadlineSeconds",
        int(spec, "startingDeadlineSeconds"),
    );
    nonnegative(
        errs,
        "spec.successfulJobsHistoryLimit",
        int(spec, "successfulJobsHistoryLimit"),
    );
    nonnegative(
        errs,
        "spec.failedJobsHistoryLimit",
        int(spec, "failedJobsHistoryLimit"),
    );
    if let Some(policy) = opt_s(spec, "concurrencyPolicy") {
        match policy {
            "Allow" | "Forbid" | "Replace" => {}
            "" => required(errs, "spec.concurrencyPolicy", ""),
            other => not_supported(
                errs,
                "spec.concurrencyPolicy",
                go_quote(other),
                &["Allow", "Forbid", "Replace"],
            ),
        }
    }
    let job_template = spec.get("jobTemplate").unwrap_or(&Value::Null);
    let job_spec_value = job_template.get("spec").unwrap_or(&Value::Null);
    job_spec(job_spec_value, "spec.jobTemplate.spec", errs);
    if let Some(sel) = field(job_spec_value, "selector") {
        invalid(
            errs,
            "spec.jobTemplate.spec.selector",
            go_label_selector(Some(sel)),
            "`selector` will be auto-generated",
        );
    }
    if flag(job_spec_value, "manualSelector") {
        not_supported(
            errs,
            "spec.jobTemplate.spec.manualSelector",
            "true",
            &["nil", "false"],
        );
    }
}
