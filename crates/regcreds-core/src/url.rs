//! The one check every URL setting of a provider gets (an API base, an endpoint override, an authority
//! host) before anything is sent there.

/// Whether `url` is an `http://` or `https://` URL with a host and without whitespace. The caller
/// trims it first if the setting allows surrounding blanks.
pub fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(host) if !host.is_empty() && !host.starts_with('/'))
        && !url.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_url_needs_a_scheme_a_host_and_no_whitespace() {
        for good in [
            "https://api.github.com",
            "http://127.0.0.1:8080/api/v3",
            "https://login.microsoftonline.us/",
        ] {
            assert!(is_http_url(good), "{good}");
        }
        for bad in [
            "",
            "api.github.com",
            "ftp://x",
            "https://",
            "https:///path",
            "https://a b",
            " https://a",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }
}
