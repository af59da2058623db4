//! A minimal distribution token server (Bearer auth, as ghcr.io, ACR and quay.io use): the registry
//! sends clients here with a challenge, this answers with an ES256 JWT the registry trusts through
//! `token-ca.crt` (its `rootcertbundle`).

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SigningKey,
};

/// The `service` the registry names in its challenge and expects as the token audience.
pub(super) const TOKEN_SERVICE: &str = "regcreds-test-registry";
/// The issuer the registry trusts.
pub(super) const TOKEN_ISSUER: &str = "regcreds-test-token-server";

/// A minimal distribution token server on a thread: `GET /token?service=..&scope=..` with Basic
/// credentials answers `{"token","access_token","expires_in"}` (an ES256 JWT granting pull and push
/// on every requested repository) or 401. One request per connection, plain http.
#[derive(Debug)]
pub(super) struct TokenServer {
    pub(super) addr: SocketAddr,
    users: Arc<Mutex<Vec<(String, String)>>>,
    /// Users who get a token that grants nothing (see [`super::TestRegistry::deny_pulls`]).
    denied: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Writes `token-ca.crt` (the registry's `rootcertbundle`) and starts serving.
    pub(super) fn start(dir: &Path, users: Vec<(String, String)>) -> Self {
        let signer = TokenSigner::new(dir);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().expect("token server addr");
        let users = Arc::new(Mutex::new(users));
        let denied = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (users, denied, stop) = (users.clone(), denied.clone(), stop.clone());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        // A broken client connection is the client's problem, not the fixture's.
                        let _ = answer(stream, &signer, &users, &denied);
                    }
                }
            }
        });
        Self {
            addr,
            users,
            denied,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub(super) fn set_users(&self, users: Vec<(String, String)>) {
        *self.users.lock().expect("users lock") = users;
    }

    pub(super) fn deny_pulls(&self, user: &str) {
        self.denied.lock().expect("denied lock").push(user.to_string());
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one token request.
fn answer(
    mut stream: TcpStream,
    signer: &TokenSigner,
    users: &Mutex<Vec<(String, String)>>,
    denied: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let head = read_head(&mut stream)?;
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/");
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_string());
    let known = users.lock().expect("users lock").clone();
    let user = authorization
        .as_deref()
        .and_then(decode_basic)
        .filter(|(user, password)| known.iter().any(|(u, p)| u == user && p == password))
        .map(|(user, _)| user);
    let (status, body) = match user {
        Some(user) => {
            let access = if denied.lock().expect("denied lock").contains(&user) {
                serde_json::Value::Array(Vec::new())
            } else {
                granted_access(target)
            };
            let token = signer.token(&user, &access);
            let body = serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 });
            ("200 OK", body.to_string())
        }
        None => (
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username/password"}]}"#.to_string(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Reads up to the blank line that ends the request head (token requests have no body).
fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// `Basic base64(user:password)` → `(user, password)`.
fn decode_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The JWT `access` claim: pull and push on every `repository:<name>:<actions>` scope asked for.
fn granted_access(target: &str) -> serde_json::Value {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let access: Vec<serde_json::Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "scope")
        .filter_map(|(_, value)| {
            let scope = percent_decode(value);
            let (resource, _actions) = scope.rsplit_once(':')?;
            let (kind, name) = resource.split_once(':')?;
            Some(serde_json::json!({ "type": kind, "name": name, "actions": ["pull", "push"] }))
        })
        .collect();
    serde_json::Value::Array(access)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Signs registry tokens with a key whose certificate chains to `token-ca.crt`.
///
/// distribution 2.8 takes the signing key from the JWT's `x5c` header and verifies that certificate
/// against its `rootcertbundle`, so the leaf travels in every token.
struct TokenSigner {
    key: KeyPair,
    x5c: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(***)")
    }
}

impl TokenSigner {
    fn new(dir: &Path) -> Self {
        let ca_key = KeyPair::generate().expect("token CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("token CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "regcreds test token CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_pem = ca.self_signed(&ca_key).expect("self-sign token CA").pem();
        fs::write(dir.join("token-ca.crt"), ca_pem).expect("write token-ca.crt");
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().expect("token signing key");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("token signer params");
        leaf.distinguished_name.push(DnType::CommonName, TOKEN_ISSUER);
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf = leaf.signed_by(&key, &issuer).expect("sign token signer cert");
        Self {
            key,
            x5c: STANDARD.encode(leaf.der()),
        }
    }

    /// A compact ES256 JWT for `user` with the given `access` claim, valid for five minutes.
    fn token(&self, user: &str, access: &serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.x5c] });
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": user,
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("{user}-{now}-{}", TOKEN_IDS.fetch_add(1, Ordering::SeqCst)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let der = self.key.sign(signing_input.as_bytes()).expect("sign token");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(ecdsa_der_to_jws(&der))
        )
    }
}

/// Makes every `jti` unique within the process.
static TOKEN_IDS: AtomicU64 = AtomicU64::new(0);

/// JWS ES256 signatures are `r ‖ s`, 32 bytes each; the signer returns ASN.1 DER
/// `SEQUENCE { INTEGER r, INTEGER s }` (short lengths: a P-256 signature is under 128 bytes).
fn ecdsa_der_to_jws(der: &[u8]) -> Vec<u8> {
    assert_eq!(der.first(), Some(&0x30), "ECDSA signature is not a DER SEQUENCE");
    let mut rest = &der[2..];
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        assert_eq!(
            rest.first(),
            Some(&0x02),
            "ECDSA signature part is not a DER INTEGER"
        );
        let len = rest[1] as usize;
        let integer = &rest[2..2 + len];
        // DER adds a 0x00 when the top bit is set, and drops leading zeros: normalise to 32 bytes.
        let integer = &integer[integer.iter().take_while(|b| **b == 0).count()..];
        out.extend(std::iter::repeat_n(0u8, 32 - integer.len()));
        out.extend_from_slice(integer);
        rest = &rest[2 + len..];
    }
    out
}
