//! `GET` over a unix socket (docker's and podman's APIs), whole in a time limit: the event
//! stream waits for it, so a runtime that hangs costs at most the limit, and a socket that ran
//! out its limit is not asked again for a minute. HTTP/1.0, so the answer is never chunked and
//! ends when the server closes.
use std::{
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use socket2::{Domain, SockAddr, Socket, Type};

/// No inspect answer is near this size.
const MAX_ANSWER: usize = 4 << 20;
/// How long a socket that did not answer in time is left alone: a hung runtime then costs
/// the stream one time limit a minute, not one per new container.
const COOLDOWN: Duration = Duration::from_secs(60);
/// The sockets left alone now, and since when (a few: one per runtime and rootless user).
static SLOW: Mutex<Vec<(PathBuf, Instant)>> = Mutex::new(Vec::new());

/// The body of a `200 OK` answer to `GET path` on the unix socket `socket`, within `limit`; or
/// why not, as a gap says it.
pub fn get(socket: &Path, path: &str, limit: Duration) -> Result<Vec<u8>, String> {
    let now = Instant::now();
    {
        let mut slow = SLOW.lock().unwrap_or_else(PoisonError::into_inner);
        slow.retain(|(_, since)| now.duration_since(*since) < COOLDOWN);
        if slow.iter().any(|(s, _)| s == socket) {
            return Err(format!(
                "{} did not answer within {limit:?} less than {COOLDOWN:?} ago, and is left alone until then",
                socket.display()
            ));
        }
    }
    request(socket, path, limit).map_err(|(why, late)| {
        if late {
            let mut slow = SLOW.lock().unwrap_or_else(PoisonError::into_inner);
            if slow.len() < 64 {
                slow.push((socket.to_path_buf(), Instant::now()));
            }
        }
        why
    })
}

/// One request; the error says whether the time limit ran out.
fn request(socket: &Path, path: &str, limit: Duration) -> Result<Vec<u8>, (String, bool)> {
    let other = |why: String| (why, false);
    let at = socket.display();
    let deadline = Instant::now() + limit;
    let s = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| other(e.to_string()))?;
    let addr = SockAddr::unix(socket).map_err(|e| other(format!("{at}: {e}")))?;
    s.connect_timeout(&addr, limit).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            other(format!("nothing listens on {at}"))
        }
        io::ErrorKind::PermissionDenied => other(format!(
            "{at} refused portwatch (permission denied: connecting needs CAP_DAC_OVERRIDE or the socket's group)"
        )),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            (format!("{at} did not accept within {limit:?}"), true)
        }
        _ => other(format!("{at}: {e}")),
    })?;
    let late = || (format!("{at} did not answer within {limit:?}"), true);
    let left = |deadline: Instant| {
        let d = deadline.saturating_duration_since(Instant::now());
        (!d.is_zero()).then_some(d)
    };
    let mut s = std::os::unix::net::UnixStream::from(s);
    s.set_write_timeout(Some(left(deadline).ok_or_else(late)?))
        .map_err(|e| other(e.to_string()))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => late(),
            _ => other(format!("{at}: {e}")),
        })?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        s.set_read_timeout(Some(left(deadline).ok_or_else(late)?))
            .map_err(|e| other(e.to_string()))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if answer.len() + n > MAX_ANSWER => {
                return Err(other(format!("{at} answered over {MAX_ANSWER} bytes")));
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(late());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(other(format!("{at}: {e}"))),
        }
    }
    body(&answer).map_err(|why| other(format!("{at} {why}")))
}

/// The body of an HTTP answer whose status is 200.
pub fn body(answer: &[u8]) -> Result<Vec<u8>, String> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("answered no HTTP header")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or("answered no HTTP status")?;
    match status {
        "200" => Ok(answer[end + 4..].to_vec()),
        "404" => Err("does not know it (404)".into()),
        other => Err(format!("answered HTTP {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io::BufRead, os::unix::net::UnixListener, thread};

    /// A real unix socket served by `serve`, and its path.
    fn server(
        serve: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static,
    ) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pw-http-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            if let Ok((s, _)) = listener.accept() {
                serve(s);
            }
        });
        path
    }

    fn request_line(s: &std::os::unix::net::UnixStream) -> String {
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn an_answer_a_missing_container_and_a_server_that_never_answers() {
        let ok = server(|mut s| {
            assert_eq!(request_line(&s), "GET /containers/x/json HTTP/1.0\r\n");
            s.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Name\":\"/web\"}",
            )
            .unwrap();
        });
        assert_eq!(
            get(&ok, "/containers/x/json", Duration::from_secs(5)).unwrap(),
            b"{\"Name\":\"/web\"}"
        );

        let missing = server(|mut s| {
            request_line(&s);
            s.write_all(b"HTTP/1.1 404 Not Found\r\n\r\n{\"message\":\"No such container\"}")
                .unwrap();
        });
        let why = get(&missing, "/containers/x/json", Duration::from_secs(5)).unwrap_err();
        assert!(why.ends_with("does not know it (404)"), "{why}");

        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let silent = server(move |s| {
            // Holds the connection open without answering until the test ends.
            let _ = rx.recv();
            drop(s);
        });
        let started = Instant::now();
        let why = get(&silent, "/x", Duration::from_millis(200)).unwrap_err();
        assert!(why.contains("did not answer within"), "{why}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Left alone for a while: the next request fails at once.
        let started = Instant::now();
        let why = get(&silent, "/x", Duration::from_secs(5)).unwrap_err();
        assert!(why.contains("is left alone until then"), "{why}");
        assert!(started.elapsed() < Duration::from_millis(100));
        drop(tx);

        let garbage = server(|mut s| {
            request_line(&s);
            s.write_all(&[0xff; 100]).unwrap();
        });
        assert!(get(&garbage, "/x", Duration::from_secs(5)).is_err());

        let nobody = std::env::temp_dir().join("pw-http-nobody-listens.sock");
        let why = get(&nobody, "/x", Duration::from_secs(1)).unwrap_err();
        assert!(why.starts_with("nothing listens on"), "{why}");
        for socket in [ok, missing, silent, garbage] {
            let _ = std::fs::remove_dir_all(socket.parent().unwrap());
        }
    }
}
