//! The command line itself: unbuilt commands fail loudly, config.yaml works.

use skiff_tests::skiff::skiff_command;

#[test]
fn commands_not_built_yet_exit_non_zero_and_say_so() {
    for command in ["agent", "check-config", "token", "killall"] {
        let output = skiff_command().unwrap().arg(command).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "skiff {command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("not built yet"),
            "skiff {command}: {stderr}"
        );
    }
}

#[test]
fn a_broken_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "data-dir: [unclosed\n").unwrap();
    let output = skiff_command()
        .unwrap()
        .args(["runtime", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("config.yaml") && stderr.contains("not valid YAML"),
        "{stderr}"
    );

    std::fs::write(&config, "no-such-flag: 1\n").unwrap();
    let output = skiff_command()
        .unwrap()
        .args(["runtime", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-flag"));
}
