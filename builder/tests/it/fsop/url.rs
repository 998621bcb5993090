//! `ADD <url>` against a real HTTP server on 127.0.0.1.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use kiln_builder::fsop::{self, FsopError, Mode, Owner, UrlCopy};
use sha2::Digest;

use super::Fx;

struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

/// Serves `routes` (path -> reply, 404 otherwise) until the test process ends. Returns the base URL.
fn serve(routes: HashMap<&'static str, Reply>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let not_found = Reply {
                status: 404,
                headers: Vec::new(),
                body: b"no".to_vec(),
            };
            let reply = routes.get(path).unwrap_or(&not_found);
            let mut head = format!(
                "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                reply.status,
                reply.body.len()
            );
            for (name, value) in &reply.headers {
                let _ = write!(head, "{name}: {value}\r\n");
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&reply.body);
        }
    });
    base
}

fn ok(body: &str, headers: Vec<(&'static str, &'static str)>) -> Reply {
    Reply {
        status: 200,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn sha256(data: &str) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data.as_bytes())))
}

fn add(url: String, dest: &str) -> UrlCopy {
    UrlCopy {
        url,
        dest: dest.to_owned(),
        chown: None,
        chmod: None,
        checksum: None,
    }
}

#[test]
fn downloads_named_after_the_url_with_mode_0600_and_last_modified() {
    let base = serve(HashMap::from([(
        "/dist/tool-1.0.tar.gz",
        ok(
            "not really gzip",
            vec![("Last-Modified", "Sun, 09 Sep 2001 01:46:40 GMT")],
        ),
    )]));
    let fx = Fx::new();
    let (fetched, report) = fsop::copy_url(
        fx.root.path(),
        &add(format!("{base}/dist/tool-1.0.tar.gz"), "/opt/"),
    )
    .unwrap();
    assert_eq!(fetched.file_name, "tool-1.0.tar.gz");
    assert_eq!(fetched.digest, sha256("not really gzip"));
    assert_eq!(report.files, 1);
    // Remote archives are not extracted.
    assert_eq!(fx.read("opt/tool-1.0.tar.gz"), "not really gzip");
    let meta = std::fs::metadata(fx.at("opt/tool-1.0.tar.gz")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o600, 0, 0));
    assert_eq!(
        meta.modified().unwrap(),
        UNIX_EPOCH + Duration::from_secs(1_000_000_000)
    );
}

#[test]
fn chown_chmod_and_a_file_destination() {
    let base = serve(HashMap::from([("/", ok("root doc", Vec::new()))]));
    let fx = Fx::new();
    let mut spec = add(format!("{base}/"), "/srv/index.html");
    spec.chown = Some(Owner::new(33, 33));
    spec.chmod = Some(Mode::parse("644").unwrap());
    let (fetched, _) = fsop::copy_url(fx.root.path(), &spec).unwrap();
    assert_eq!(fetched.file_name, "__unnamed__");
    assert_eq!(fx.read("srv/index.html"), "root doc");
    assert_eq!(fx.meta("srv/index.html"), (0o644, 33, 33));
}

#[test]
fn checksum_is_verified() {
    let base = serve(HashMap::from([("/f.txt", ok("content", Vec::new()))]));
    let fx = Fx::new();
    let mut spec = add(format!("{base}/f.txt"), "/a/");
    spec.checksum = Some(sha256("content"));
    fsop::copy_url(fx.root.path(), &spec).unwrap();
    assert_eq!(fx.read("a/f.txt"), "content");

    let wrong = sha256("other");
    spec.checksum = Some(wrong.clone());
    spec.dest = "/b/".into();
    let err = fsop::copy_url(fx.root.path(), &spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "checksum mismatch for {base}/f.txt: expected {wrong}, got {}",
            sha256("content")
        )
    );
    assert!(!fx.exists("b"));

    spec.checksum = Some("sha256:1234".into());
    assert!(matches!(
        fsop::copy_url(fx.root.path(), &spec).unwrap_err(),
        FsopError::InvalidChecksum { .. }
    ));
}

#[test]
fn http_errors_are_reported_with_the_status() {
    let base = serve(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let err = fsop::fetch(&format!("{base}/missing"), dir.path(), None).unwrap_err();
    assert!(
        matches!(err, FsopError::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
