//! A registry behind HTTP Basic auth: anonymous access is refused as Docker words it,
//! configured credentials work, login checks and saves them, logout forgets them.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::Engine as _;
use kiln_builder::content::ContentStore;
use kiln_builder::registry::{CredentialStore, Credentials, NoProgress, NoRetain, RegistryError};

use super::support::{PASSWORD, Recorded, Recorder, Registry, USER, client, image, logged_in};
use super::token_server::TokenServer;

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_pull_and_push_are_denied() {
    let registry = Registry::with_basic_auth();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "secret", "linux/amd64", 0);
    let reference = registry.reference("private/app:1");
    let host = registry.host();

    let error = client(None)
        .push(&content, &built.target, &reference, None, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::PushDenied { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("push access denied for {host}/private/app: requested access to the resource is denied")
    );

    let error = client(None)
        .resolve(&reference, &kiln_builder::platform::host(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "pull access denied for {host}/private/app, repository does not exist or may require 'docker login'"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_from_the_docker_config_are_used() {
    let registry = Registry::with_basic_auth();
    let (_dir, credentials) = logged_in(&registry.host());
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "with-creds", "linux/amd64", 0);
    let reference = registry.reference("private/app:1");
    let authenticated = client(Some(credentials));
    authenticated
        .push(&content, &built.target, &reference, None, &NoProgress)
        .await
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let pulled = authenticated
        .pull(
            &reference,
            &kiln_builder::platform::host(),
            &store,
            &NoRetain,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.config.digest, built.config.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_checks_and_saves_credentials_and_logout_removes_them() {
    let registry = Registry::with_basic_auth();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let store = CredentialStore::at(dir.path().join("docker"));
    let config = dir.path().join("docker/config.json");
    let anonymous = client(None);

    let wrong = Credentials::Basic {
        username: USER.into(),
        password: "wrong".into(),
    };
    let error = anonymous.login(&host, &wrong, &store).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("login attempt to http://{host}/v2/ failed with status: 401 Unauthorized")
    );
    assert!(!config.exists(), "rejected credentials are not saved");

    let right = Credentials::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    };
    anonymous.login(&host, &right, &store).await.unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(saved["auths"][&host]["auth"], auth);
    assert_eq!(fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(store.get(&host).unwrap(), Some(right));

    // The saved login is what a client reading this store uses.
    let reference = registry.reference("private/app:nope");
    let error = client(Some(store.clone()))
        .resolve(&reference, &kiln_builder::platform::host(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::ManifestUnknown { .. }),
        "authenticated, then not found: {error:?}"
    );

    assert!(anonymous.logout(&host, &store).unwrap());
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(saved["auths"], serde_json::json!({}));
    assert_eq!(store.get(&host).unwrap(), None);
    assert!(
        !anonymous.logout(&host, &store).unwrap(),
        "a second logout finds nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_carry_the_scopes_of_pull_push_and_mount() {
    let tokens = TokenServer::start().await;
    let registry = Registry::with_token_auth(&tokens.realm(), &tokens.root_cert());
    let host = registry.host();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "bearer", "linux/amd64", 0);
    let first = registry.reference("team/first:1");

    // Anonymous: a token that grants nothing, so the registry refuses.
    let error = client(None)
        .push(&content, &built.target, &first, None, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::PushDenied { .. }), "{error:?}");
    let error = client(None)
        .resolve(&first, &kiln_builder::platform::host(), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::PullDenied { .. }), "{error:?}");

    let (_dir, credentials) = logged_in(&host);
    let authenticated = client(Some(credentials));
    authenticated
        .push(&content, &built.target, &first, None, &NoProgress)
        .await
        .unwrap();
    let second = registry.reference("team/second:1");
    let recorder = Recorder::default();
    authenticated
        .push(&content, &built.target, &second, Some("team/first"), &recorder)
        .await
        .unwrap();
    let mounted = recorder
        .events()
        .iter()
        .filter(|e| matches!(e, Recorded::Mounted(..)))
        .count();
    assert_eq!(
        mounted,
        built.blobs().len(),
        "the token allowed pulling from the source repository"
    );

    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    authenticated
        .pull(
            &second,
            &kiln_builder::platform::host(),
            &store,
            &NoRetain,
            &NoProgress,
        )
        .await
        .unwrap();

    let requests = tokens.requests();
    let asked = |scopes: &[&str]| {
        requests.iter().any(|r| {
            r.authenticated && r.scopes == scopes.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
        })
    };
    assert!(asked(&["repository:team/first:pull,push"]), "{requests:?}");
    assert!(
        asked(&["repository:team/second:pull,push", "repository:team/first:pull"]),
        "{requests:?}"
    );
    assert!(asked(&["repository:team/second:pull"]), "{requests:?}");
    // One token per scope set, reused for every request of the pull or push.
    assert_eq!(
        requests.iter().filter(|r| r.authenticated).count(),
        3,
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_against_a_token_server() {
    let tokens = TokenServer::start().await;
    let registry = Registry::with_token_auth(&tokens.realm(), &tokens.root_cert());
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let store = CredentialStore::at(dir.path());

    let wrong = Credentials::Basic {
        username: USER.into(),
        password: "nope".into(),
    };
    let error = client(None).login(&host, &wrong, &store).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("login attempt to http://{host}/v2/ failed with status: 401 Unauthorized")
    );
    let right = Credentials::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    };
    client(None).login(&host, &right, &store).await.unwrap();
    assert_eq!(store.get(&host).unwrap(), Some(right));
}
