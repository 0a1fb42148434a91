//! Jobs: `kubectl create job` runs to completion; completions with
//! parallelism; a failing Job stops at its backoffLimit.

use std::time::Duration;

use skiff_tests::Fixture;

use super::{Cluster, assert_contains, event_lines, events, events_for, items, name, table};

const JOBS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: pieces
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: piece
        image: IMAGE
        command: [sh, -c, "echo piece"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: doomed
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: doomed
        image: IMAGE
        command: [sh, -c, "exit 2"]
"#;

/// `kubectl wait --for=condition=<condition> job/<job>`.
fn wait_job(cluster: &Cluster, job: &str, condition: &str) {
    let out = cluster.run(&[
        "wait",
        &format!("--for=condition={condition}"),
        &format!("job/{job}"),
        "--timeout=90s",
    ]);
    if !out.status.success() {
        let describe = cluster.run(&["describe", "job", job]);
        let pods = cluster.run(&["get", "pods", "-o", "wide"]);
        cluster.fail(&format!(
            "job {job} not {condition}: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&describe.stdout),
            String::from_utf8_lossy(&pods.stdout)
        ));
    }
    assert_contains(
        &String::from_utf8_lossy(&out.stdout),
        &format!("job.batch/{job} condition met"),
    );
}

#[test]
fn jobs_run_to_completion() {
    let cluster = Cluster::start("job-node");
    let image = cluster.image(Fixture::Busybox);
    assert_contains(
        &cluster.kubectl(&[
            "create",
            "job",
            "hello",
            &format!("--image={image}"),
            "--",
            "sh",
            "-c",
            "echo done",
        ]),
        "job.batch/hello created",
    );
    wait_job(&cluster, "hello", "complete");
    let rows = table(&cluster.kubectl(&["get", "job", "hello"]));
    assert_eq!(
        (rows[0]["STATUS"].as_str(), rows[0]["COMPLETIONS"].as_str()),
        ("Complete", "1/1"),
        "{rows:?}"
    );
    assert_eq!(cluster.kubectl(&["logs", "job/hello"]), "done\n");
    let pods = items(&cluster.json(&["get", "pods", "-l", "job-name=hello"]));
    assert_eq!(pods.len(), 1);
    let pod = name(&pods[0]).to_string();
    assert_eq!(pods[0]["status"]["phase"], "Succeeded");
    let rows = table(&cluster.kubectl(&["get", "pods", "-l", "job-name=hello"]));
    assert_eq!(
        (rows[0]["READY"].as_str(), rows[0]["STATUS"].as_str()),
        ("0/1", "Completed"),
        "{rows:?}"
    );
    let all = cluster.eventually("the Job's events", Duration::from_secs(10), || {
        let all = events(&cluster);
        if events_for(&all, "Job", "hello", "Completed").is_empty() {
            Err(event_lines(&all))
        } else {
            Ok(all)
        }
    });
    assert_eq!(
        events_for(&all, "Job", "hello", "SuccessfulCreate")
            .first()
            .map(|e| e["message"].clone()),
        Some(format!("Created pod: {pod}").into()),
        "{}",
        event_lines(&all)
    );
    assert_eq!(
        events_for(&all, "Job", "hello", "Completed")[0]["message"],
        "Job completed"
    );

    // Completions and parallelism; a Job that fails past its backoffLimit.
    cluster.apply(&JOBS.replace("IMAGE", &image));
    wait_job(&cluster, "pieces", "complete");
    let rows = table(&cluster.kubectl(&["get", "job", "pieces"]));
    assert_eq!(rows[0]["COMPLETIONS"], "3/3", "{rows:?}");
    let pods = items(&cluster.json(&["get", "pods", "-l", "job-name=pieces"]));
    let succeeded = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .count();
    assert_eq!(succeeded, 3, "{pods:?}");

    wait_job(&cluster, "doomed", "failed");
    let job = cluster.json(&["get", "job", "doomed"]);
    let failed = job["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Failed").cloned())
        .unwrap_or_default();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{job}");
    assert_eq!(
        failed["message"], "Job has reached the specified backoff limit",
        "{job}"
    );
    assert_eq!(job["status"]["failed"], 2, "{}", job["status"]);
    let rows = table(&cluster.kubectl(&["get", "job", "doomed"]));
    assert_eq!(
        (rows[0]["STATUS"].as_str(), rows[0]["COMPLETIONS"].as_str()),
        ("Failed", "0/1"),
        "{rows:?}"
    );
    let all = events(&cluster);
    let limit = events_for(&all, "Job", "doomed", "BackoffLimitExceeded");
    assert!(!limit.is_empty(), "{}", event_lines(&all));
    assert_eq!(limit[0]["type"], "Warning");
}
