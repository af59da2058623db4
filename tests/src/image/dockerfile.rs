//! The final stage of a `Dockerfile`, read the way BuildKit reads it — enough of it to compare with an
//! image built without Docker: `FROM`, `ARG` (with `--build-arg` values), `ENV`, `LABEL`, `USER`,
//! `WORKDIR`, `EXPOSE`, `ENTRYPOINT`, `CMD` and `COPY`.
//!
//! ```text
//! text ─► logical lines (comments dropped, `\` continuations joined, heredoc bodies skipped)
//!      ─► instructions; global ARGs (before the first FROM) feed FROM lines and stage ARGs that
//!         re-declare them; `$X`, `${X}`, `${X:-default}`, `${X:+alt}` expanded from ARG and ENV
//!      ─► FinalStage of the last FROM
//! ```
//!
//! Not supported, and refused with an error rather than misread: the `# escape=` directive, the legacy
//! `LABEL key value` / `ENV key value` forms, heredocs in the final stage.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};

/// What the last stage of a `Dockerfile` declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalStage {
    /// The image of the last `FROM`, variables expanded, without `AS name`.
    pub from: String,
    /// `USER`, if set in this stage.
    pub user: Option<String>,
    /// `WORKDIR`, if set in this stage.
    pub workdir: Option<String>,
    /// `ENTRYPOINT`, if set in this stage (shell form becomes `["/bin/sh", "-c", …]` as in Docker).
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, if set in this stage (and not reset by a later `ENTRYPOINT`).
    pub cmd: Option<Vec<String>>,
    /// `EXPOSE`d ports as `port/protocol`.
    pub exposed_ports: BTreeSet<String>,
    /// `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `ENV` pairs in order.
    pub env: Vec<(String, String)>,
    /// `ARG`s of this stage with the value in effect.
    pub args: BTreeMap<String, String>,
    /// `COPY` instructions.
    pub copies: Vec<CopyInstruction>,
}

/// One `COPY`: its `--flag=value`s, sources and destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyInstruction {
    /// `--from`, `--chown`, `--chmod`, … without the dashes.
    pub flags: BTreeMap<String, String>,
    /// Source paths.
    pub sources: Vec<String>,
    /// Destination path.
    pub destination: String,
}

/// Reads the final stage of `dockerfile`, with `build_args` as `docker build --build-arg` values.
pub fn final_stage(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Result<FinalStage> {
    let lines = logical_lines(dockerfile)?;
    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    let mut stage: Option<(FinalStage, bool)> = None; // (stage, has a heredoc)
    for (number, line) in lines {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = instruction.to_ascii_uppercase();
        let rest = rest.trim();
        let context = || format!("Dockerfile line {number}: {instruction}");
        if instruction == "FROM" {
            let image = rest
                .split_whitespace()
                .find(|word| !word.starts_with("--"))
                .with_context(context)?;
            stage = Some((
                FinalStage {
                    from: expand(image, &global_args).with_context(context)?,
                    ..FinalStage::default()
                },
                false,
            ));
            continue;
        }
        let Some((current, has_heredoc)) = stage.as_mut() else {
            if instruction == "ARG" {
                for (name, default) in arg_declarations(rest) {
                    let value = build_args.get(&name).cloned().or(default).unwrap_or_default();
                    global_args.insert(name, value);
                }
            }
            continue;
        };
        if line.contains("<<") && matches!(instruction.as_str(), "RUN" | "COPY") {
            *has_heredoc = true;
        }
        let variables = |current: &FinalStage| {
            let mut vars = current.args.clone();
            vars.extend(current.env.iter().cloned());
            vars
        };
        match instruction.as_str() {
            "ARG" => {
                for (name, default) in arg_declarations(rest) {
                    let default = default.or_else(|| global_args.get(&name).cloned());
                    let value = build_args.get(&name).cloned().or(default).unwrap_or_default();
                    current.args.insert(name, value);
                }
            }
            "ENV" => {
                let pairs = key_value_pairs(rest, &variables(current)).with_context(context)?;
                current.env.extend(pairs);
            }
            "LABEL" => {
                let pairs = key_value_pairs(rest, &variables(current)).with_context(context)?;
                current.labels.extend(pairs);
            }
            "USER" => current.user = Some(expand(rest, &variables(current)).with_context(context)?),
            "WORKDIR" => current.workdir = Some(expand(rest, &variables(current)).with_context(context)?),
            "EXPOSE" => {
                for port in expand(rest, &variables(current))
                    .with_context(context)?
                    .split_whitespace()
                {
                    let port = if port.contains('/') {
                        port.to_ascii_lowercase()
                    } else {
                        format!("{port}/tcp")
                    };
                    current.exposed_ports.insert(port);
                }
            }
            "ENTRYPOINT" => {
                current.entrypoint = Some(command_form(rest).with_context(context)?);
                // Docker: setting ENTRYPOINT resets a CMD this stage did not set after it.
                current.cmd = None;
            }
            "CMD" => current.cmd = Some(command_form(rest).with_context(context)?),
            "COPY" => {
                let copy = copy_instruction(rest, &variables(current)).with_context(context)?;
                current.copies.push(copy);
            }
            _ => {}
        }
    }
    let (stage, has_heredoc) = stage.context("the Dockerfile has no FROM")?;
    if has_heredoc {
        bail!("heredocs in the final stage are not supported by this reader");
    }
    Ok(stage)
}

/// `(line number, instruction text)`: comments and blank lines dropped, continuations joined,
/// heredoc bodies (`<<EOT` … `EOT`) skipped.
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut at_top = true;
    while let Some((index, raw)) = lines.next() {
        let trimmed = raw.trim();
        if at_top
            && trimmed
                .to_ascii_lowercase()
                .replace(' ', "")
                .starts_with("#escape=")
        {
            bail!(
                "Dockerfile line {}: the escape directive is not supported",
                index + 1
            );
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        at_top = false;
        let mut logical = String::new();
        let mut current = raw.trim_end().to_string();
        loop {
            match current.strip_suffix('\\') {
                Some(head) => {
                    logical.push_str(head);
                    logical.push(' ');
                    // The next line that is neither blank nor a comment continues this instruction.
                    let next = lines.by_ref().map(|(_, l)| l).find(|l| {
                        let l = l.trim_start();
                        !l.is_empty() && !l.starts_with('#')
                    });
                    match next {
                        Some(next) => current = next.trim_end().to_string(),
                        None => break,
                    }
                }
                None => {
                    logical.push_str(&current);
                    break;
                }
            }
        }
        for (delimiter, strip_tabs) in heredoc_delimiters(&logical) {
            let end = lines.by_ref().find(|(_, l)| {
                let l = if strip_tabs { l.trim_start_matches('\t') } else { l };
                l == delimiter
            });
            if end.is_none() {
                bail!(
                    "Dockerfile line {}: heredoc {delimiter} is never closed",
                    index + 1
                );
            }
        }
        out.push((index + 1, logical.trim().to_string()));
    }
    Ok(out)
}

/// `<<EOT`, `<<-EOT`, `<<"EOT"`, `<<'EOT'` in an instruction: `(EOT, strip leading tabs)`.
fn heredoc_delimiters(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(position) = rest.find("<<") {
        rest = &rest[position + 2..];
        let strip_tabs = rest.starts_with('-');
        let word = rest.trim_start_matches('-');
        let word = word.trim_start_matches(['"', '\'']);
        let name: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push((name, strip_tabs));
        }
    }
    out
}

/// `ARG A=1 B` → `[(A, Some(1)), (B, None)]` (values may be quoted).
fn arg_declarations(rest: &str) -> Vec<(String, Option<String>)> {
    words(rest)
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(unquote(value))),
            None => (word, None),
        })
        .collect()
}

/// `k1="v 1" k2=v2` → pairs, values expanded (except inside single quotes).
fn key_value_pairs(rest: &str, variables: &BTreeMap<String, String>) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for word in words(rest) {
        let Some((key, value)) = word.split_once('=') else {
            bail!("only the key=value form is supported, found `{word}`");
        };
        let key = unquote(key);
        let value = if value.starts_with('\'') {
            unquote(value)
        } else {
            expand(&unquote(value), variables)?
        };
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// `["/regcreds"]` (exec form, JSON) or `run --flag` (shell form, run by `/bin/sh -c`).
fn command_form(rest: &str) -> Result<Vec<String>> {
    if rest.starts_with('[') {
        serde_json::from_str(rest).with_context(|| format!("not a JSON array of strings: {rest}"))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
    }
}

fn copy_instruction(rest: &str, variables: &BTreeMap<String, String>) -> Result<CopyInstruction> {
    let mut copy = CopyInstruction::default();
    let mut paths = Vec::new();
    for word in words(rest) {
        match word.strip_prefix("--") {
            Some(flag) => {
                let (name, value) = flag.split_once('=').unwrap_or((flag, "true"));
                copy.flags
                    .insert(name.to_string(), expand(&unquote(value), variables)?);
            }
            None => paths.push(expand(&unquote(&word), variables)?),
        }
    }
    copy.destination = paths.pop().context("COPY without a destination")?;
    copy.sources = paths;
    if copy.sources.is_empty() {
        bail!("COPY without a source");
    }
    Ok(copy)
}

/// Splits on whitespace outside quotes; quotes stay in the words (so `k="a b"` is one word).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                word.push(c);
            }
            (Some('"'), '\\') => {
                word.push(c);
                word.extend(chars.next());
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                word.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Removes the quotes of a word (`"a b"` → `a b`, `\"` → `"` inside double quotes).
fn unquote(word: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => out.extend(chars.next()),
            (None, '"' | '\'') => quote = Some(c),
            _ => out.push(c),
        }
    }
    out
}

/// Expands `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}`; unknown names are empty
/// (as in Docker); `\$` is a literal dollar.
fn expand(text: &str, variables: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => out.extend(chars.next()),
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let (name, modifier) = match inner.split_once(':') {
                    Some((name, modifier)) => (name, Some(modifier)),
                    None => (inner.as_str(), None),
                };
                let value = variables.get(name).filter(|v| !v.is_empty());
                let expanded = match (modifier, value) {
                    (None, value) => value.cloned().unwrap_or_default(),
                    (Some(m), Some(value)) if m.starts_with('-') => value.clone(),
                    (Some(m), None) if m.starts_with('-') => m[1..].to_string(),
                    (Some(m), Some(_)) if m.starts_with('+') => m[1..].to_string(),
                    (Some(m), None) if m.starts_with('+') => String::new(),
                    (Some(m), _) => bail!("unsupported variable modifier `${{{name}:{m}}}`"),
                };
                out.push_str(&expanded);
            }
            '$' if chars.peek().is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') => {
                let mut name = String::new();
                while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    name.push(c);
                }
                out.push_str(variables.get(&name).map_or("", String::as_str));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# syntax=docker/dockerfile:1.7
ARG BASE=debian:12
ARG VERSION=0.0.1

FROM --platform=$BUILDPLATFORM rust:1.95 AS builder
RUN <<EOT
FROM inside-a-heredoc
EXPOSE 1
EOT
RUN echo one \
    # a comment inside a continuation
    two

FROM ${BASE} AS final
ARG VERSION
ARG REVISION=unknown
ARG EMPTY
LABEL a.title="regcreds" \
      a.version="${VERSION}" a.revision=$REVISION \
      'a.quoted'='$VERSION literal' a.default="${EMPTY:-none}" a.escaped="say \"hi\""
ENV HOME=/home/x
WORKDIR $HOME
COPY --from=builder --chown=0:0 --chmod=0755 /out/bin /bin/app
USER 65532:65532
EXPOSE 8080 9090/UDP
CMD ["ignored"]
ENTRYPOINT ["/bin/app"]
CMD ["run", "--flag"]
"#;

    #[test]
    fn reads_the_last_stage_with_build_args() -> Result<()> {
        let args = BTreeMap::from([("REVISION".to_string(), "abc123".to_string())]);
        let stage = final_stage(SAMPLE, &args)?;
        assert_eq!(stage.from, "debian:12");
        assert_eq!(stage.user.as_deref(), Some("65532:65532"));
        assert_eq!(stage.workdir.as_deref(), Some("/home/x"));
        assert_eq!(stage.entrypoint, Some(vec!["/bin/app".to_string()]));
        assert_eq!(stage.cmd, Some(vec!["run".to_string(), "--flag".to_string()]));
        assert_eq!(
            stage.exposed_ports,
            BTreeSet::from(["8080/tcp".to_string(), "9090/udp".to_string()])
        );
        let labels: Vec<(&str, &str)> = stage
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("a.default", "none"),
                ("a.escaped", "say \"hi\""),
                ("a.quoted", "$VERSION literal"),
                ("a.revision", "abc123"),
                ("a.title", "regcreds"),
                ("a.version", "0.0.1"),
            ]
        );
        assert_eq!(stage.copies.len(), 1);
        assert_eq!(stage.copies[0].destination, "/bin/app");
        assert_eq!(stage.copies[0].sources, ["/out/bin"]);
        assert_eq!(stage.copies[0].flags["chmod"], "0755");
        assert_eq!(stage.copies[0].flags["from"], "builder");
        Ok(())
    }

    #[test]
    fn a_build_arg_overrides_the_global_default() -> Result<()> {
        let args = BTreeMap::from([
            ("VERSION".to_string(), "9.9.9".to_string()),
            ("BASE".to_string(), "scratch".to_string()),
        ]);
        let stage = final_stage(SAMPLE, &args)?;
        assert_eq!(stage.labels["a.version"], "9.9.9");
        assert_eq!(stage.from, "scratch");
        Ok(())
    }

    #[test]
    fn entrypoint_after_cmd_resets_it_and_shell_form_uses_sh() -> Result<()> {
        let stage = final_stage("FROM x\nCMD [\"a\"]\nENTRYPOINT /bin/app run\n", &BTreeMap::new())?;
        assert_eq!(stage.cmd, None);
        assert_eq!(
            stage.entrypoint,
            Some(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "/bin/app run".to_string()
            ])
        );
        Ok(())
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (text, expected) in [
            ("# escape=`\nFROM x\n", "escape directive"),
            ("FROM x\nLABEL key value\n", "key=value form"),
            ("FROM x\nRUN <<EOT\necho\n", "never closed"),
            ("FROM x\nRUN <<EOT\necho\nEOT\n", "heredocs in the final stage"),
            ("ARG A=1\n", "no FROM"),
        ] {
            let err = final_stage(text, &BTreeMap::new()).expect_err("must be refused");
            assert!(format!("{err:#}").contains(expected), "{text:?}: {err:#}");
        }
    }
}
