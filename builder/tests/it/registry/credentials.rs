//! Docker's config.json and credential helpers, read and written as Docker does.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kiln_builder::registry::credentials::{CredentialsError, DOCKER_HUB_SERVER};
use kiln_builder::registry::{CredentialStore, Credentials};
use serde_json::json;

fn store_with(config: &serde_json::Value) -> (tempfile::TempDir, CredentialStore) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let store = CredentialStore::at(dir.path());
    (dir, store)
}

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

#[test]
fn auths_entries_are_found_by_host_whatever_the_key_form() {
    let (_dir, store) = store_with(&json!({
        "auths": {
            DOCKER_HUB_SERVER: { "auth": "aHViOmh1Yi1wYXNz" },
            "https://registry.example.com/v1/": { "auth": "dXNlcjpwYTpzcw==" },
            "plain.example:5000": { "username": "u", "password": "p" },
            "token.example": { "auth": "dG9rdXNlcjo=", "identitytoken": "refresh-me" },
            "empty.example": {}
        }
    }));
    assert_eq!(store.get("docker.io").unwrap(), Some(basic("hub", "hub-pass")));
    assert_eq!(
        store.get("registry.example.com").unwrap(),
        Some(basic("user", "pa:ss"))
    );
    assert_eq!(store.get("plain.example:5000").unwrap(), Some(basic("u", "p")));
    assert_eq!(
        store.get("token.example").unwrap(),
        Some(Credentials::IdentityToken {
            username: "tokuser".into(),
            token: "refresh-me".into()
        })
    );
    assert_eq!(store.get("empty.example").unwrap(), None);
    assert_eq!(store.get("other.example").unwrap(), None);
}

#[test]
fn a_missing_config_has_no_credentials_and_a_broken_one_says_where() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        CredentialStore::at(dir.path().join("none"))
            .get("docker.io")
            .unwrap(),
        None
    );

    let (dir, store) = store_with(&json!({ "auths": { "bad.example": { "auth": "%%%" } } }));
    let error = store.get("bad.example").unwrap_err();
    assert!(matches!(error, CredentialsError::InvalidAuth { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "invalid auth for bad.example in {}",
            dir.path().join("config.json").display()
        )
    );

    fs::write(dir.path().join("config.json"), "{not json").unwrap();
    let error = store.get("bad.example").unwrap_err();
    assert!(error.to_string().starts_with("parse "), "{error}");
}

#[test]
fn store_and_erase_keep_the_rest_of_the_file() {
    let (dir, store) = store_with(&json!({
        "auths": { "keep.example": { "auth": "a2VlcDptZQ==" } },
        "psFormat": "table {{.ID}}",
        "proxies": { "default": { "httpProxy": "http://proxy:3128" } }
    }));
    store.store("docker.io", &basic("me", "pw")).unwrap();
    store.store("new.example:5000", &basic("x", "y")).unwrap();
    let path = dir.path().join("config.json");
    let config: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(config["psFormat"], "table {{.ID}}");
    assert_eq!(config["proxies"]["default"]["httpProxy"], "http://proxy:3128");
    assert_eq!(config["auths"][DOCKER_HUB_SERVER]["auth"], "bWU6cHc=");
    assert_eq!(store.get("keep.example").unwrap(), Some(basic("keep", "me")));
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    assert!(store.erase("docker.io").unwrap());
    assert!(!store.erase("docker.io").unwrap());
    let config: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert!(config["auths"].get(DOCKER_HUB_SERVER).is_none());
    assert_eq!(store.get("new.example:5000").unwrap(), Some(basic("x", "y")));
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["config.json"], "no temp file left behind");
}

const CHILD_ENV: &str = "KILN_IT_CREDENTIAL_HELPER_CHILD";

/// A credential helper speaking Docker's protocol, keeping one secret per server in a directory.
/// (The server URL comes on stdin without a newline, as Docker sends it.)
const HELPER: &str = r#"#!/bin/sh
set -e
dir="$(dirname "$0")/secrets"
mkdir -p "$dir"
case "$1" in
get)
    server=$(cat)
    key=$(printf %s "$server" | tr -c 'a-zA-Z0-9' _)
    if [ -f "$dir/$key" ]; then cat "$dir/$key"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
    input=$(cat)
    server=$(printf %s "$input" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/')
    key=$(printf %s "$server" | tr -c 'a-zA-Z0-9' _)
    printf %s "$input" > "$dir/$key" ;;
erase)
    server=$(cat)
    key=$(printf %s "$server" | tr -c 'a-zA-Z0-9' _)
    rm -f "$dir/$key" ;;
*) exit 2 ;;
esac
"#;

#[test]
fn a_credential_helper_from_docker_config_env_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-kilntest");
    fs::write(&helper, HELPER).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config");
    fs::create_dir(&config).unwrap();
    fs::write(
        config.join("config.json"),
        json!({ "credsStore": "kilntest", "credHelpers": { "other.example": "missing-helper" } }).to_string(),
    )
    .unwrap();

    // PATH and DOCKER_CONFIG are process-wide: the helper runs in a process of its own.
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "registry::credentials::helper_child",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("DOCKER_CONFIG", &config)
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(config.join("config.json")).unwrap()).unwrap();
    assert!(saved["auths"].get("helped.example").is_none(), "erased: {saved}");
    assert!(
        helper_secrets(&bin).is_empty(),
        "the helper's copy was erased too"
    );
}

fn helper_secrets(bin: &Path) -> Vec<String> {
    fs::read_dir(bin.join("secrets"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The half of `a_credential_helper_from_docker_config_env_is_used` that runs with its PATH.
#[test]
#[ignore = "run in a child process by a_credential_helper_from_docker_config_env_is_used"]
fn helper_child() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "started by the helper test"
    );
    let store = CredentialStore::from_env().unwrap();
    assert_eq!(
        store.get("helped.example").unwrap(),
        None,
        "the helper has nothing yet"
    );
    store.store("helped.example", &basic("alice", "wonder")).unwrap();
    assert_eq!(
        store.get("helped.example").unwrap(),
        Some(basic("alice", "wonder"))
    );
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(store.config_path()).unwrap()).unwrap();
    assert_eq!(
        saved["auths"]["helped.example"],
        json!({}),
        "the file records the login, not the secret"
    );

    let error = store.get("other.example").unwrap_err();
    assert_eq!(
        error.to_string(),
        "run credential helper docker-credential-missing-helper get"
    );

    assert!(store.erase("helped.example").unwrap());
    assert_eq!(store.get("helped.example").unwrap(), None);
}
