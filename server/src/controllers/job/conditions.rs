//! A Job's conditions as the 1.32 controller writes them: the interim
//! SuccessCriteriaMet and FailureTarget, then Complete or Failed once the
//! Job's pods are all counted and gone; Suspended.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `Complete`.
pub const COMPLETE: &str = "Complete";
/// `Failed`.
pub const FAILED: &str = "Failed";
/// `SuccessCriteriaMet`, set before `Complete`.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// `FailureTarget`, set before `Failed`.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// `Suspended`.
pub const SUSPENDED: &str = "Suspended";

/// A condition with both times at `now`.
pub fn new(type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        message: (!message.is_empty()).then(|| message.to_owned()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The interim condition of a Job that reached its completions.
pub fn success_criteria_met(now: Timestamp) -> JobCondition {
    new(
        SUCCESS_CRITERIA_MET,
        "True",
        "CompletionsReached",
        "Reached expected number of succeeded pods",
        now,
    )
}

/// The interim condition of a Job that failed for `reason`.
pub fn failure_target(reason: &str, message: &str, now: Timestamp) -> JobCondition {
    new(FAILURE_TARGET, "True", reason, message, now)
}

/// The final condition following an interim one (`Complete` after
/// `SuccessCriteriaMet`, `Failed` after `FailureTarget`), with its reason.
pub fn final_for(interim: &JobCondition, now: Timestamp) -> JobCondition {
    let type_ = if interim.type_ == SUCCESS_CRITERIA_MET {
        COMPLETE
    } else {
        FAILED
    };
    new(
        type_,
        "True",
        interim.reason.as_deref().unwrap_or(""),
        interim.message.as_deref().unwrap_or(""),
        now,
    )
}

fn conditions(job: &Job) -> &[JobCondition] {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

/// The Job's condition of `type_` whose status is True.
pub fn true_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    conditions(job)
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job is Complete or Failed.
pub fn is_finished(job: &Job) -> bool {
    finished_at(job).is_some()
}

/// When the Job finished: the transition time of its Complete or Failed
/// condition.
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    conditions(job)
        .iter()
        .find(|c| (c.type_ == COMPLETE || c.type_ == FAILED) && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
        })
}

/// Sets the condition of `type_` to `status` (replacing it when its status,
/// reason or message differ; adding it unless `status` is False); returns
/// whether anything changed.
pub fn ensure(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let wanted = new(type_, status, reason, message, now);
    if let Some(existing) = list.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != wanted.status
            || existing.reason != wanted.reason
            || existing.message != wanted.message
        {
            *existing = wanted;
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(wanted);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn ensure_adds_true_conditions_and_replaces_changed_ones() {
        let mut list = Vec::new();
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            ts(1)
        ));
        assert!(list.is_empty());
        assert!(ensure(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            ts(1)
        ));
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            ts(2)
        ));
        assert!(ensure(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            ts(3)
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, "False");
        assert_eq!(list[0].last_transition_time, Some(Time(ts(3))));
    }

    #[test]
    fn final_conditions_keep_the_interim_reason() {
        let failed = final_for(&failure_target("BackoffLimitExceeded", "m", ts(1)), ts(2));
        assert_eq!(failed.type_, FAILED);
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
        let complete = final_for(&success_criteria_met(ts(1)), ts(2));
        assert_eq!(complete.type_, COMPLETE);
        assert_eq!(complete.reason.as_deref(), Some("CompletionsReached"));
    }
}
