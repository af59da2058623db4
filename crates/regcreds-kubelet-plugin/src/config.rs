//! The provider's `env` list of a `CredentialProviderConfig` (`kubelet.config.k8s.io/v1`,
//! `k8s.io/kubelet@v0.37.2/config/v1/types.go`: `env: [{name, value}]`), as YAML lines that end a provider
//! entry written at the indentation the chart's config head uses (`  - name: …` / `    args: …`).
//!
//! Values become YAML double-quoted scalars: a backslash and a quote are escaped, a line feed is `\n`, a tab
//! stays. Other control characters are refused: the kubelet would hand them to the plugin as they are, and in
//! practice they are a pasted carriage return (a Secret written on Windows), which no variable wants.

use crate::Error;

/// `    env:` and one `{name, value}` item per variable, or `    env: []` without any; each line ends in
/// `\n`.
pub fn env_list_yaml<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<String, Error> {
    let mut items = String::new();
    for (name, value) in env {
        if !is_variable_name(name) {
            return Err(Error::NotAVariableName(name.to_string()));
        }
        if value.chars().any(|c| c.is_control() && c != '\t' && c != '\n') {
            return Err(Error::ControlCharacters(name.to_string()));
        }
        items += &format!("      - name: {name}\n        value: \"{}\"\n", quoted(value));
    }
    Ok(if items.is_empty() {
        "    env: []\n".to_string()
    } else {
        format!("    env:\n{items}")
    })
}

/// A POSIX variable name: a letter or underscore, then letters, digits and underscores.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The inside of a YAML double-quoted scalar holding `value`.
fn quoted(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_so_that_yaml_gives_them_back() {
        let yaml = env_list_yaml([
            ("A", "p\"a\\ss: #word\twith tab"),
            ("PEM", "-----BEGIN-----\nMII\n"),
        ])
        .expect("valid");
        assert_eq!(
            yaml,
            "    env:\n      - name: A\n        value: \"p\\\"a\\\\ss: #word\twith tab\"\n      \
             - name: PEM\n        value: \"-----BEGIN-----\\nMII\\n\"\n"
        );
        assert_eq!(env_list_yaml([]).expect("empty"), "    env: []\n");
    }

    #[test]
    fn a_carriage_return_or_a_bad_name_is_refused_naming_the_variable() {
        assert_eq!(
            env_list_yaml([("REGCREDS_STATIC_PASSWORD", "windows\r\nline")]),
            Err(Error::ControlCharacters("REGCREDS_STATIC_PASSWORD".into()))
        );
        for name in ["", "1A", "A-B", "A B"] {
            assert_eq!(
                env_list_yaml([(name, "v")]),
                Err(Error::NotAVariableName(name.into()))
            );
        }
    }
}
