//! `fetch` and `md5_file`: local paths, file:// urls, and http against a server on 127.0.0.1.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::super::*;

/// A one-thread HTTP/1.0 server on 127.0.0.1 that serves `files` and counts requests.
fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let response = match files.get(&path) {
                Some(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    (base, hits)
}

fn md5_of(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    format!("{:x}", Md5::digest(data))
}

#[test]
fn fetch_copies_local_files_and_file_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("img.tar.gz");
    fs::write(&src, b"image bytes").unwrap();
    let cache = tmp.path().join("cache");
    let got = fetch(src.to_str().unwrap(), &cache, Some(&md5_of(b"image bytes"))).unwrap();
    assert_eq!(got, cache.join("img.tar.gz"));
    assert_eq!(fs::read(&got).unwrap(), b"image bytes");
    assert_eq!(md5_file(&got).unwrap(), md5_of(b"image bytes"));
    let cache2 = tmp.path().join("cache2");
    let got = fetch(&format!("file://{}", src.display()), &cache2, None).unwrap();
    assert_eq!(fs::read(got).unwrap(), b"image bytes");
    let err = fetch(tmp.path().join("missing.tar").to_str().unwrap(), &cache, None).unwrap_err();
    assert!(err.to_string().contains("missing.tar"), "{err}");
}

#[test]
fn fetch_follows_the_md5_rules_over_http() {
    let body = b"build tarball".to_vec();
    let md5 = md5_of(&body);
    let (base, hits) = serve(HashMap::from([("/builds/app.tar.gz".to_string(), body.clone())]));
    let url = format!("{base}/builds/app.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let dest = cache.join("app.tar.gz");

    // First fetch downloads and verifies.
    assert_eq!(fetch(&url, cache, Some(&md5)).unwrap(), dest);
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Present and matching (md5 in upper case): no request.
    fetch(&url, cache, Some(&md5.to_uppercase())).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Present, no md5 given: kept as is, even if it differs.
    fs::write(&dest, b"stale").unwrap();
    fetch(&url, cache, None).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"stale");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Present with the wrong md5: fetched again.
    fetch(&url, cache, Some(&md5)).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Fetched but not what was expected: error naming both md5s, nothing left behind.
    let wrong = "0123456789abcdef0123456789abcdef";
    let err = fetch(&url, cache, Some(wrong)).unwrap_err().to_string();
    assert!(err.contains(wrong) && err.contains(&md5), "{err}");
    assert_eq!(fs::read_dir(cache).unwrap().count(), 0, "the file and temp files are removed");

    // HTTP errors name the url and the status.
    let missing = format!("{base}/builds/missing.tar.gz");
    let err = fetch(&missing, cache, None).unwrap_err();
    assert!(matches!(err, ImageError::HttpStatus { status: 404, .. }), "{err}");
    assert!(err.to_string().contains(&missing) && err.to_string().contains("404"), "{err}");
    assert_eq!(fs::read_dir(cache).unwrap().count(), 0);
}

#[test]
fn fetch_refuses_bad_urls_and_md5s() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fetch("ftp://example.com/x.tar", tmp.path(), None).unwrap_err();
    assert!(err.to_string().contains("use http://"), "{err}");
    let err = fetch("/srv/x.tar", tmp.path(), Some("nope")).unwrap_err();
    assert!(matches!(err, ImageError::BadMd5 { .. }), "{err}");
    let err = fetch("http://127.0.0.1:1/x.tar", tmp.path(), None).unwrap_err();
    assert!(matches!(err, ImageError::Download { .. }), "{err}");
}
