//! Where the verifier refuses to send a credential, against tiny hand-written HTTP servers (no
//! registry needed: these are about the transport, not the handshake).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::Duration,
};

use regcreds_core::{Credential, RegistryHost};
use regcreds_verify::{Outcome, Verifier, VerifierOptions};

/// Answers every request with `respond(request head)`, one request per connection; returns `host:port`.
fn serve_forever(respond: impl Fn(&str) -> String + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let head = read_request_head(&mut stream);
            let _ = stream.write_all(respond(&head).as_bytes());
        }
    });
    addr
}

fn read_request_head(stream: &mut TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

fn response(status: &str, headers: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
}

fn verifier_allowing(hosts: &[&str]) -> Verifier {
    Verifier::new(VerifierOptions {
        timeout: Duration::from_secs(3),
        insecure_http_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        ..VerifierOptions::default()
    })
    .expect("verifier")
}

fn credential(host: &str) -> Credential {
    Credential::new(
        RegistryHost::parse(host).expect("key"),
        "alice",
        "pw-never-in-clear",
    )
}

/// A listener that records whether anybody connected to it.
struct Trap {
    listener: TcpListener,
    host: String,
}

impl Trap {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let host = listener.local_addr().expect("addr").to_string();
        Self { listener, host }
    }

    fn was_contacted(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

#[tokio::test]
async fn a_redirect_to_a_plain_http_host_that_is_not_allowed_is_not_followed() {
    let trap = Trap::new();
    let location = format!("Location: http://{}/v2/\r\n", trap.host);
    // Challenges with Basic, then redirects the authenticated /v2/ to the trap.
    let redirecting = serve_forever(move |head| {
        if head.contains("authorization: basic") {
            response("307 Temporary Redirect", &location)
        } else {
            response("401 Unauthorized", "Www-Authenticate: Basic realm=\"r\"\r\n")
        }
    });
    let result = verifier_allowing(&[&redirecting])
        .check(&credential(&redirecting), None)
        .await;
    let Outcome::Error { reason } = &result.outcome else {
        panic!("expected error: {result}")
    };
    assert!(reason.contains("307"), "{reason}");
    assert!(
        !trap.was_contacted(),
        "the credential was sent to a host not allowed plain http"
    );
}

#[tokio::test]
async fn a_token_realm_on_plain_http_gets_no_password_unless_its_host_is_allowed() {
    let trap = Trap::new();
    let challenge = format!(
        "Www-Authenticate: Bearer realm=\"http://{}/token\",service=\"s\"\r\n",
        trap.host
    );
    let registry = serve_forever(move |_| response("401 Unauthorized", &challenge));
    let result = verifier_allowing(&[&registry])
        .check(&credential(&registry), None)
        .await;
    let Outcome::Error { reason } = &result.outcome else {
        panic!("expected error: {result}")
    };
    assert!(reason.contains("not sent"), "{reason}");
    assert!(!trap.was_contacted(), "the token realm was contacted");
}

#[tokio::test]
async fn a_server_that_is_not_a_registry_is_an_error_naming_the_status() {
    let server = serve_forever(|_| response("404 Not Found", ""));
    let result = verifier_allowing(&[&server])
        .check(&credential(&server), None)
        .await;
    let Outcome::Error { reason } = &result.outcome else {
        panic!("expected error: {result}")
    };
    assert!(
        reason.contains("404") && reason.contains("registry v2 API"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_unreachable_after_the_timeout() {
    // Accepts connections (the kernel backlog does) but never responds.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let host = silent.local_addr().expect("addr").to_string();
    let verifier = Verifier::new(VerifierOptions {
        timeout: Duration::from_millis(300),
        insecure_http_hosts: vec![host.clone()],
        ..VerifierOptions::default()
    })
    .expect("verifier");
    let result = verifier.check(&credential(&host), None).await;
    let Outcome::Unreachable { reason } = &result.outcome else {
        panic!("expected unreachable: {result}")
    };
    assert!(reason.contains("no answer within"), "{reason}");
    drop(silent);
}
