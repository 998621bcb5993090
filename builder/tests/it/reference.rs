//! Image reference parsing against Docker's normalisation rules and error messages.

use kiln_builder::content::Digest;
use kiln_builder::reference::ImageRef;

const HEX: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

/// One valid input and what it must normalise to.
struct Valid {
    input: String,
    full: String,
    domain: &'static str,
    path: &'static str,
    tag: Option<&'static str>,
    digest_hex: Option<&'static str>,
    familiar: &'static str,
}

/// Valid inputs: (input, full form, domain, path, tag, digest hex, familiar name).
#[test]
fn valid_references_normalise_like_docker() {
    let digest = format!("sha256:{HEX}");
    let at_digest = |name: &str| format!("{name}@{digest}");
    #[rustfmt::skip]
    let cases = vec![
        ok("nginx", "docker.io/library/nginx:latest", "docker.io", "library/nginx", Some("latest"), None, "nginx"),
        ok("nginx:1.25", "docker.io/library/nginx:1.25", "docker.io", "library/nginx", Some("1.25"), None, "nginx"),
        ok("user/app", "docker.io/user/app:latest", "docker.io", "user/app", Some("latest"), None, "user/app"),
        ok("docker.io/nginx", "docker.io/library/nginx:latest", "docker.io", "library/nginx", Some("latest"), None, "nginx"),
        ok("library/nginx", "docker.io/library/nginx:latest", "docker.io", "library/nginx", Some("latest"), None, "nginx"),
        ok("index.docker.io/user/app:v1", "docker.io/user/app:v1", "docker.io", "user/app", Some("v1"), None, "user/app"),
        ok("docker.io/library/a/b", "docker.io/library/a/b:latest", "docker.io", "library/a/b", Some("latest"), None, "library/a/b"),
        ok("localhost/app", "localhost/app:latest", "localhost", "app", Some("latest"), None, "localhost/app"),
        ok("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000", "app", Some("1"), None, "localhost:5000/app"),
        // A bare `localhost` is a Hub name, and `localhost:5000` a Hub name with tag 5000 (as Docker).
        ok("localhost", "docker.io/library/localhost:latest", "docker.io", "library/localhost", Some("latest"), None, "localhost"),
        ok("localhost:5000", "docker.io/library/localhost:5000", "docker.io", "library/localhost", Some("5000"), None, "localhost"),
        ok("example.com/a/b/c:v-1.0_X", "example.com/a/b/c:v-1.0_X", "example.com", "a/b/c", Some("v-1.0_X"), None, "example.com/a/b/c"),
        ok("Example.COM:443/app", "Example.COM:443/app:latest", "Example.COM:443", "app", Some("latest"), None, "Example.COM:443/app"),
        // An uppercase first part can only be a domain.
        ok("FOO/bar", "FOO/bar:latest", "FOO", "bar", Some("latest"), None, "FOO/bar"),
        ok("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000", "app", Some("latest"), None, "[::1]:5000/app"),
        ok("a/b--c/d__e/f.g_h", "docker.io/a/b--c/d__e/f.g_h:latest", "docker.io", "a/b--c/d__e/f.g_h", Some("latest"), None, "a/b--c/d__e/f.g_h"),
        ok(&at_digest("127.0.0.1:5000/a/b"), &at_digest("127.0.0.1:5000/a/b"), "127.0.0.1:5000", "a/b", None, Some(HEX), "127.0.0.1:5000/a/b"),
        ok(&at_digest("nginx"), &at_digest("docker.io/library/nginx"), "docker.io", "library/nginx", None, Some(HEX), "nginx"),
        ok(&at_digest("name:tag"), &at_digest("docker.io/library/name:tag"), "docker.io", "library/name", Some("tag"), Some(HEX), "name"),
    ];
    for Valid {
        input,
        full,
        domain,
        path,
        tag,
        digest_hex,
        familiar,
    } in cases
    {
        let r = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(r.to_string(), full, "{input}");
        assert_eq!(r.domain(), domain, "{input}");
        assert_eq!(r.path(), path, "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(r.digest().map(Digest::hex), digest_hex, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
        // The full form is canonical: it parses back to the same reference.
        assert_eq!(ImageRef::parse(&full).unwrap(), r, "{input}");
    }
}

fn ok(
    input: &str,
    full: &str,
    domain: &'static str,
    path: &'static str,
    tag: Option<&'static str>,
    digest_hex: Option<&'static str>,
    familiar: &'static str,
) -> Valid {
    Valid {
        input: input.to_owned(),
        full: full.to_owned(),
        domain,
        path,
        tag,
        digest_hex,
        familiar,
    }
}

/// Invalid inputs and Docker's exact message for each.
#[test]
fn invalid_references_fail_with_dockers_messages() {
    let hex_upper = HEX.to_uppercase();
    let long_tag = "t".repeat(129);
    let long_path = format!("user/{}", "a".repeat(251));
    #[rustfmt::skip]
    let cases: Vec<(String, String)> = vec![
        e("", "invalid reference format"),
        e("nginx:", "invalid reference format"),
        e(":tag", "invalid reference format"),
        e("nginx:-tag", "invalid reference format"),
        e("nginx:.tag", "invalid reference format"),
        e(&format!("nginx:{long_tag}"), "invalid reference format"),
        e("foo:bar:baz", "invalid reference format"),
        e("/nginx", "invalid reference format"),
        e("nginx/", "invalid reference format"),
        e("a//b", "invalid reference format"),
        e("-nginx", "invalid reference format"),
        e("nginx-", "invalid reference format"),
        e("a/b___c", "invalid reference format"),
        e("a/b._c", "invalid reference format"),
        e("a/b c", "invalid reference format"),
        e("localhost:abc/app", "invalid reference format"),
        e("example.com:/app", "invalid reference format"),
        e("-example.com/app", "invalid reference format"),
        e("[zz]:5000/app", "invalid reference format"),
        e("nginx@sha256:abc", "invalid reference format"),
        e("nginx@@sha256:abc", "invalid reference format"),
        e(&format!("nginx@{HEX}"), "invalid reference format"),
        // kiln refuses a first part that is neither host nor Hub namespace (Docker makes it domain-less).
        e("a_b.c/app", "invalid reference format"),
        e("Nginx", "invalid reference format: repository name (library/Nginx) must be lowercase"),
        e("user/App:v1", "invalid reference format: repository name (user/App) must be lowercase"),
        e("localhost:5000/App", "invalid reference format: repository name (App) must be lowercase"),
        e("Foo_Bar/baz", "repository name must be lowercase"),
        e(HEX, &format!("invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings")),
        e(&long_path, "repository name must not be more than 255 characters"),
        e(&format!("nginx@sha256:{hex_upper}"), "invalid checksum digest format"),
        e(&format!("nginx@sha256:{}", &HEX[..63]), "invalid checksum digest format"),
        e(&format!("nginx@md5:{}", &HEX[..32]), "unsupported digest algorithm"),
        // Docker also takes sha384/sha512 digests; kiln computes and stores sha256 only.
        e(&format!("nginx@sha512:{HEX}{HEX}"), "unsupported digest algorithm"),
    ];
    for (input, message) in cases {
        match ImageRef::parse(&input) {
            Ok(r) => panic!("{input:?} parsed as {r}"),
            Err(error) => assert_eq!(error.to_string(), message, "{input:?}"),
        }
    }
}

fn e(input: &str, message: &str) -> (String, String) {
    (input.to_owned(), message.to_owned())
}

#[test]
fn length_limits_are_inclusive() {
    let path = format!("user/{}", "a".repeat(250));
    assert_eq!(ImageRef::parse(&path).unwrap().path().len(), 255);
    let tag = "t".repeat(128);
    assert_eq!(
        ImageRef::parse(&format!("nginx:{tag}")).unwrap().tag(),
        Some(tag.as_str())
    );
}

#[test]
fn with_tag_validates_the_tag() {
    let r = ImageRef::parse("localhost:5000/app").unwrap();
    assert_eq!(r.with_tag("v2").unwrap().to_string(), "localhost:5000/app:v2");
    assert_eq!(
        r.with_tag("bad tag").unwrap_err().to_string(),
        "invalid tag format"
    );
    assert_eq!(r.with_tag("").unwrap_err().to_string(), "invalid tag format");
}

#[test]
fn familiar_string_keeps_tag_and_digest() {
    let digest = format!("sha256:{HEX}");
    let r = ImageRef::parse(&format!("user/app:1@{digest}")).unwrap();
    assert_eq!(r.familiar_string(), format!("user/app:1@{digest}"));
    assert_eq!(r.name(), "docker.io/user/app");
    let pinned = ImageRef::parse("nginx")
        .unwrap()
        .with_digest(Digest::parse(&digest).unwrap());
    assert_eq!(
        pinned.to_string(),
        format!("docker.io/library/nginx:latest@{digest}")
    );
}

#[test]
fn serde_uses_the_full_form() {
    let r = ImageRef::parse("user/app:1").unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, "\"docker.io/user/app:1\"");
    assert_eq!(serde_json::from_str::<ImageRef>(&json).unwrap(), r);
    let error = serde_json::from_str::<ImageRef>("\"Bad\"").unwrap_err();
    assert!(error.to_string().contains("must be lowercase"), "{error}");
}
