//! The streaming verbs through the apiserver to the kubelet: `logs -f`,
//! `exec` (piped and `-it` on a terminal), `run -i` (attach),
//! `port-forward` and `cp`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use skiff_tests::Fixture;

use super::pty::Terminal;
use super::{Cluster, HTTPD, assert_contains, http_get};

/// Says `line-<n>` every second until SIGTERM.
const TALKER: &str =
    "trap 'exit 0' TERM; i=0; while true; do echo line-$i; i=$((i+1)); sleep 1; done";

/// `kubectl run <name> --restart=Never --image=<busybox> --command -- sh -c <script>`,
/// then waits for it Ready.
fn run_pod(cluster: &Cluster, pod: &str, script: &str) {
    let image = cluster.image(Fixture::Busybox);
    let out = cluster.kubectl(&[
        "run",
        pod,
        &format!("--image={image}"),
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_contains(&out, &format!("pod/{pod} created"));
    cluster.wait_pod_ready(pod);
}

#[test]
fn logs_follow_and_exec_piped_and_on_a_terminal() {
    let cluster = Cluster::start("exec-node");
    run_pod(&cluster, "talker", TALKER);

    // Plain logs, --tail and --timestamps.
    let logs = cluster.eventually("talker's first lines", Duration::from_secs(10), || {
        let logs = cluster.kubectl(&["logs", "talker"]);
        if logs.lines().count() >= 2 {
            Ok(logs)
        } else {
            Err(logs)
        }
    });
    assert!(logs.starts_with("line-0\nline-1\n"), "{logs:?}");
    let tail = cluster.kubectl(&["logs", "talker", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail:?}");
    assert!(tail.starts_with("line-"), "{tail:?}");
    let stamped = cluster.kubectl(&["logs", "talker", "--timestamps", "--tail=1"]);
    let (stamp, line) = stamped.trim_end().split_once(' ').unwrap_or_default();
    assert!(
        stamp.len() >= 20 && stamp.contains('T') && stamp.ends_with('Z'),
        "an RFC 3339 timestamp first: {stamped:?}"
    );
    assert!(line.starts_with("line-"), "{stamped:?}");

    // Follow: the lines already written, then new ones as they come.
    let known = cluster.kubectl(&["logs", "talker"]).lines().count();
    let mut follow = cluster.background(&["logs", "-f", "talker"]);
    let awaited = format!("line-{}", known + 2);
    let seen = follow.read_until(Duration::from_secs(20), |line| line == awaited);
    let expected: Vec<String> = (0..=known + 2).map(|i| format!("line-{i}")).collect();
    assert_eq!(seen, expected);
    follow.stop();

    // Exec with piped output, stderr and the exit code.
    let out = cluster.run(&[
        "exec",
        "talker",
        "--",
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\n",
        "stderr: {stderr}"
    );
    assert_contains(&stderr, "oops");
    assert_contains(&stderr, "command terminated with exit code 3");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        cluster
            .kubectl(&["exec", "talker", "--", "cat", "/etc/skiff-release"])
            .trim(),
        "2.0"
    );
    assert_eq!(
        cluster
            .kubectl(&["exec", "talker", "-c", "talker", "--", "hostname"])
            .trim(),
        "talker"
    );
    // Exec with stdin.
    assert_eq!(
        cluster.kubectl_stdin(
            &["exec", "-i", "talker", "--", "tr", "a-z", "A-Z"],
            "piped input\n"
        ),
        "PIPED INPUT\n"
    );

    // Exec -it on a terminal: an interactive shell that sees a tty of the
    // user's size, and follows a resize.
    let mut command = Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(cluster.server.kubeconfig())
        .args(["exec", "-it", "talker", "--", "sh"])
        .env("TERM", "xterm");
    let mut terminal = Terminal::spawn(command, 33, 101);
    let shell = |terminal: &Terminal, what: &str| -> ! {
        cluster.fail(&format!(
            "kubectl exec -it: {what}; the terminal showed:\n{:?}",
            terminal.screen()
        ))
    };
    // busybox sh's prompt as root.
    if !terminal.wait_for(0, "# ", Duration::from_secs(20)) {
        shell(&terminal, "no prompt");
    }
    let mark = terminal.mark();
    // Expected output is computed remotely, so the echo of what is typed
    // never matches it.
    terminal.type_keys("echo $((6*7))-answer; test -t 0 && echo tty-$((1+1)); stty size\n");
    for expected in ["42-answer", "tty-2", "33 101"] {
        if !terminal.wait_for(mark, expected, Duration::from_secs(10)) {
            shell(&terminal, &format!("no {expected:?}"));
        }
    }
    terminal.resize(40, 120);
    let resized = (0..20).any(|_| {
        let mark = terminal.mark();
        terminal.type_keys("stty size\n");
        terminal.wait_for(mark, "40 120", Duration::from_millis(500))
    });
    if !resized {
        shell(&terminal, "the resize to 40x120 never reached the shell");
    }
    // Ctrl-C reaches the remote shell as a character, not a signal to kubectl.
    terminal.type_keys("sleep 31\n");
    // The sleep runs in the container (exec shares its PID namespace).
    cluster.eventually("sleep 31 running", Duration::from_secs(10), || {
        let ps = cluster.kubectl(&["exec", "talker", "--", "ps", "-o", "args"]);
        if ps.lines().any(|l| l.trim() == "sleep 31") {
            Ok(())
        } else {
            Err(format!("{}\nps in the container:\n{ps}", terminal.screen()))
        }
    });
    let mark = terminal.mark();
    terminal.type_keys("\x03");
    terminal.type_keys("echo $((3+3))-after-interrupt\n");
    if !terminal.wait_for(mark, "6-after-interrupt", Duration::from_secs(10)) {
        shell(&terminal, "Ctrl-C did not interrupt the remote sleep");
    }
    terminal.type_keys("exit 0\n");
    match terminal.wait(Duration::from_secs(10)) {
        Some(status) if status.success() => {}
        Some(status) => shell(&terminal, &format!("kubectl exited with {status}")),
        None => shell(&terminal, "kubectl did not exit after `exit`"),
    }

    // `kubectl run -it --rm`: a new pod's shell on the terminal (attach
    // with a tty), deleted when it exits.
    let image = cluster.image(Fixture::Busybox);
    let mut command = Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(cluster.server.kubeconfig())
        .args(["run", "shell", "-it", "--rm", "--restart=Never"])
        .arg(format!("--image={image}"))
        .args(["--command", "--", "sh"])
        .env("TERM", "xterm");
    let mut terminal = Terminal::spawn(command, 33, 101);
    // kubectl attaches after the shell printed its first prompt: what
    // it types shows once attached.
    let attached = (0..40).any(|_| {
        let mark = terminal.mark();
        terminal.type_keys("echo $((20+22))-attached\n");
        terminal.wait_for(mark, "42-attached", Duration::from_millis(500))
    });
    if !attached {
        shell(&terminal, "kubectl run -it never reached the pod's shell");
    }
    let mark = terminal.mark();
    terminal.type_keys("stty size\n");
    if !terminal.wait_for(mark, "33 101", Duration::from_secs(10)) {
        shell(&terminal, "the attached tty is not the terminal's size");
    }
    terminal.type_keys("exit\n");
    match terminal.wait(Duration::from_secs(30)) {
        Some(status) if status.success() => {}
        Some(status) => shell(&terminal, &format!("kubectl run -it exited with {status}")),
        None => shell(&terminal, "kubectl run -it did not exit after `exit`"),
    }
    assert!(
        terminal.screen().contains("pod \"shell\" deleted"),
        "{:?}",
        terminal.screen()
    );
    cluster.eventually("pod shell deleted", Duration::from_secs(30), || {
        let out = cluster.run(&["get", "pod", "shell", "-o", "name"]);
        if out.status.success() {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Ok(())
        }
    });

    // Large output through exec.
    let size = cluster.kubectl(&[
        "exec",
        "talker",
        "--",
        "sh",
        "-c",
        "head -c 5000000 /dev/zero | tr '\\0' x",
    ]);
    assert_eq!(size.len(), 5_000_000);
    assert!(size.bytes().all(|b| b == b'x'));
}

#[test]
fn attach_port_forward_and_cp() {
    let cluster = Cluster::start("stream-node");
    run_pod(&cluster, "web", HTTPD);

    // Port-forward on a port the kernel picks, on 127.0.0.1 only.
    let mut forward =
        cluster.background(&["port-forward", "--address", "127.0.0.1", "pod/web", ":8080"]);
    let lines = forward.read_until(Duration::from_secs(20), |line| {
        line.starts_with("Forwarding from 127.0.0.1:")
    });
    let line = lines.last().cloned().unwrap_or_default();
    let port: u16 = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert!(line.ends_with("-> 8080"), "{line:?}");
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..3 {
        let body = cluster.eventually(
            "an HTTP answer through port-forward",
            Duration::from_secs(10),
            || http_get(local, "/etc/skiff-release"),
        );
        assert_eq!(body.trim(), "2.0");
    }
    assert_eq!(
        forward.next_line(Duration::from_secs(5)).as_deref(),
        Some(format!("Handling connection for {port}").as_str())
    );
    forward.stop();

    // Through a Service: kubectl picks a pod and maps port 80 to 8080.
    cluster.kubectl(&["expose", "pod", "web", "--port=80", "--target-port=8080"]);
    let mut forward = cluster.background(&[
        "port-forward",
        "--address",
        "127.0.0.1",
        "service/web",
        ":80",
    ]);
    let lines = forward.read_until(Duration::from_secs(20), |line| {
        line.starts_with("Forwarding from 127.0.0.1:")
    });
    let line = lines.last().cloned().unwrap_or_default();
    assert!(line.ends_with("-> 8080"), "{line:?}");
    let port: u16 = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let body = cluster.eventually(
        "an HTTP answer through port-forward to the Service",
        Duration::from_secs(10),
        || http_get(([127, 0, 0, 1], port).into(), "/etc/skiff-release"),
    );
    assert_eq!(body.trim(), "2.0");
    forward.stop();

    // cp into the pod, out of it, and a directory out of it.
    let scratch = cluster.scratch();
    let into = scratch.join("in.txt");
    std::fs::write(&into, "copied into the pod\n").expect("write in.txt");
    cluster.kubectl(&["cp", &into.display().to_string(), "web:/tmp/in.txt"]);
    assert_eq!(
        cluster.kubectl(&["exec", "web", "--", "cat", "/tmp/in.txt"]),
        "copied into the pod\n"
    );
    cluster.kubectl(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/out/sub && echo made in the pod > /tmp/out/file.txt && echo deeper > /tmp/out/sub/more.txt",
    ]);
    let file = scratch.join("file.txt");
    cluster.kubectl(&["cp", "web:/tmp/out/file.txt", &file.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap_or_default(),
        "made in the pod\n"
    );
    let dir = scratch.join("out");
    cluster.kubectl(&["cp", "web:/tmp/out", &dir.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/more.txt")).unwrap_or_default(),
        "deeper\n"
    );
    // A few megabytes, in and out again, byte for byte.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let big_in = scratch.join("big.bin");
    std::fs::write(&big_in, &big).expect("write big.bin");
    cluster.kubectl(&["cp", &big_in.display().to_string(), "web:/tmp/big.bin"]);
    assert_eq!(
        cluster
            .kubectl(&["exec", "web", "--", "sh", "-c", "wc -c < /tmp/big.bin"])
            .trim(),
        "3000000"
    );
    let big_out = scratch.join("big-back.bin");
    cluster.kubectl(&["cp", "web:/tmp/big.bin", &big_out.display().to_string()]);
    assert!(
        std::fs::read(&big_out).unwrap_or_default() == big,
        "the 3 MB file came back changed"
    );

    // `kubectl run -i --rm`: attach to the new pod's stdin and output,
    // then delete it.
    let image = cluster.image(Fixture::Busybox);
    let out = cluster.kubectl_stdin(
        &[
            "run",
            "echoer",
            "-i",
            "--rm",
            "--restart=Never",
            &format!("--image={image}"),
            "--command",
            "--",
            "sh",
            "-c",
            "read line; echo got-$line",
        ],
        "hello\n",
    );
    assert_contains(&out, "got-hello");
    cluster.eventually("pod echoer deleted", Duration::from_secs(30), || {
        let out = cluster.run(&["get", "pod", "echoer"]);
        if out.status.success() {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Ok(())
        }
    });
}
