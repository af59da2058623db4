//! The registry's own error code from a refusal (`UNAUTHORIZED`, `DENIED`, ...), for the user.
//!
//! The distribution API answers errors with `{"errors":[{"code","message","detail"}]}` (distribution's
//! `docs/spec/api.md`, "Errors", and `registry/api/errcode`); token servers that follow distribution's
//! token spec answer refusals the same way. Only the `code` is kept: it is one of a small documented
//! set of upper-case identifiers, whereas `message` and `detail` may quote the request (scopes, names)
//! and are never shown. A `HEAD` answer has no body, so the caller reads the code from a `GET` of the
//! same resource.

use reqwest::Response;

/// Error bodies are small; anything longer is not read further.
const MAX_BODY: usize = 16 * 1024;

/// The first error code of a distribution error body, if the body is one.
pub(crate) async fn read(mut response: Response) -> Option<String> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return None;
        }
    }
    parse(&body)
}

/// `errors[0].code` when it looks like a distribution error code (upper case and `_`, at most 64).
fn parse(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    let code = body.errors.into_iter().next()?.code;
    let plausible =
        !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    plausible.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_code_of_a_distribution_error_body_is_kept() {
        let denied =
            br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(parse(denied).as_deref(), Some("DENIED"));
        let two = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"demo/hello","Action":"pull"}]},{"code":"DENIED"}]}"#;
        assert_eq!(parse(two).as_deref(), Some("UNAUTHORIZED"));
    }

    #[test]
    fn anything_else_yields_no_code() {
        for body in [
            &b""[..],
            b"denied",
            br#"{"details":"incorrect username or password"}"#,
            br#"{"errors":[]}"#,
            br#"{"errors":[{"code":"secret-token-abc"}]}"#,
            br#"{"errors":[{"code":""}]}"#,
        ] {
            assert_eq!(parse(body), None, "{}", String::from_utf8_lossy(body));
        }
    }
}
