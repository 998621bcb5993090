//! `kiln login` and `kiln logout` against a registry with Basic auth: credentials checked, saved
//! where Docker keeps them (a temp `DOCKER_CONFIG`), used by pull and push, then forgotten.

use crate::support::{REGISTRY_PASSWORD, REGISTRY_USER, Registry, Root, Run};

/// `kiln login` with the password on stdin.
fn login_stdin(root: &Root, config: &std::path::Path, host: &str, password: &str) -> Run {
    let out = root
        .kiln()
        .env("DOCKER_CONFIG", config)
        .args(["login", "-u", REGISTRY_USER, "--password-stdin", host])
        .write_stdin(format!("{password}\n"))
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn saved_logins(config: &std::path::Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(config.join("config.json")) else {
        return Vec::new();
    };
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["auths"]
        .as_object()
        .map(|auths| auths.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn login_lets_pull_and_push_through_and_logout_takes_it_back() {
    let registry = Registry::with_basic_auth();
    let host = registry.host();
    let config = tempfile::tempdir().unwrap();
    let source = Root::new();
    let name = registry.name("busybox:1");
    source.import_busybox(&name);

    let denied = source.run_with_config(config.path(), &["push", &name]);
    assert!(!denied.ok);
    assert!(
        denied.stderr.contains(&format!(
            "error: push access denied for {}",
            registry.name("busybox")
        )),
        "{}",
        denied.stderr
    );

    let wrong = source.run_with_config(
        config.path(),
        &["login", "-u", REGISTRY_USER, "-p", "wrong", &host],
    );
    assert!(!wrong.ok);
    assert!(
        wrong.stderr.ends_with(&format!(
            "error: login attempt to http://{host}/v2/ failed with status: 401 Unauthorized\n"
        )),
        "{}",
        wrong.stderr
    );
    assert!(
        saved_logins(config.path()).is_empty(),
        "a refused login saves nothing"
    );

    let login = source.run_with_config(
        config.path(),
        &["login", "-u", REGISTRY_USER, "-p", REGISTRY_PASSWORD, &host],
    );
    assert!(login.ok, "{}", login.stderr);
    assert_eq!(login.stdout, "Login Succeeded\n");
    assert!(
        login
            .stderr
            .starts_with("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"),
        "{}",
        login.stderr
    );
    assert!(login.stderr.contains("stored unencrypted"), "{}", login.stderr);
    assert_eq!(saved_logins(config.path()), vec![host.clone()]);
    let push = source.run_with_config(config.path(), &["push", "-q", &name]);
    assert!(push.ok, "{}", push.stderr);

    let logout = source.run_with_config(config.path(), &["logout", &host]);
    assert_eq!(logout.stdout, format!("Removing login credentials for {host}\n"));
    assert!(saved_logins(config.path()).is_empty());
    let target = Root::new();
    let pull = target.run_with_config(config.path(), &["pull", &name]);
    assert!(!pull.ok);
    assert!(
        pull.stderr.contains(&format!(
            "error: pull access denied for {}, repository does not exist or may require 'docker login'",
            registry.name("busybox")
        )),
        "{}",
        pull.stderr
    );

    let login = login_stdin(
        &target,
        config.path(),
        &format!("http://{host}/"),
        REGISTRY_PASSWORD,
    );
    assert!(login.ok, "{}", login.stderr);
    assert_eq!(login.stdout, "Login Succeeded\n");
    assert!(
        !login.stderr.contains("--password via the CLI"),
        "{}",
        login.stderr
    );
    let pull = target.run_with_config(config.path(), &["pull", "-q", &name]);
    assert!(pull.ok, "{}", pull.stderr);
    assert_eq!(pull.stdout, format!("{name}\n"));

    let logout = target.run_with_config(config.path(), &["logout", &host]);
    assert_eq!(logout.stdout, format!("Removing login credentials for {host}\n"));
    let again = target.run_with_config(config.path(), &["logout", &host]);
    assert_eq!(again.stdout, format!("Not logged in to {host}\n"));
    let pull = Root::new().run_with_config(config.path(), &["pull", "-q", &name]);
    assert!(!pull.ok, "logged out, the registry refuses again");
    assert!(pull.stderr.contains("pull access denied"), "{}", pull.stderr);
}

#[test]
fn login_refuses_what_docker_refuses() {
    let config = tempfile::tempdir().unwrap();
    let root = Root::new();
    let run = |args: &[&str]| root.run_with_config(config.path(), args);
    // No terminal to prompt on (the test's stdin is not one).
    let prompt = run(&["login", "127.0.0.1:1"]);
    assert_eq!(
        prompt.stderr,
        "error: Cannot perform an interactive login from a non TTY device\n"
    );
    let stdin = run(&["login", "--password-stdin", "127.0.0.1:1"]);
    assert_eq!(
        stdin.stderr,
        "error: Must provide --username with --password-stdin\n"
    );
    let both = run(&["login", "-u", "a", "-p", "b", "--password-stdin", "127.0.0.1:1"]);
    assert_eq!(
        both.stderr,
        "error: --password and --password-stdin are mutually exclusive\n"
    );
    let hub = run(&["logout"]);
    assert_eq!(hub.stdout, "Not logged in to https://index.docker.io/v1/\n");
    assert!(!config.path().join("config.json").exists(), "nothing written");
}
