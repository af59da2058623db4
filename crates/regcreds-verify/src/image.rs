//! The probe image: a repository and tag (or digest) inside the registry being checked.

use std::fmt;

/// A repository path and reference within one registry, such as `demo/hello:v1` or
/// `team/app@sha256:…`. It carries no host: the credential under test decides the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    repository: String,
    reference: String,
}

/// Why a probe image reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// The repository part is empty or has empty path components.
    #[error("image {0:?} has an empty repository or path component")]
    EmptyRepository(String),
    /// A character a registry would refuse.
    #[error("image {0:?} contains characters not allowed in a repository (lowercase a-z, 0-9, . _ - /)")]
    InvalidRepository(String),
    /// The tag or digest after `:`/`@` is empty.
    #[error("image {0:?} has an empty tag or digest")]
    EmptyReference(String),
}

impl ImageRef {
    /// Parses `repo[:tag]` or `repo@digest`; the tag defaults to `latest`, as docker's does.
    pub fn parse(raw: &str) -> Result<Self, ImageRefError> {
        let (repository, reference) = match raw.split_once('@') {
            Some((repo, digest)) => (repo, digest),
            // A ':' after the last '/' starts the tag; before it, it would be a port, which has no place here.
            None => match raw.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) {
                Some((repo, tag)) => (repo, tag),
                None => (raw, "latest"),
            },
        };
        if reference.is_empty() {
            return Err(ImageRefError::EmptyReference(raw.to_string()));
        }
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(ImageRefError::EmptyRepository(raw.to_string()));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if !repository.chars().all(allowed) {
            return Err(ImageRefError::InvalidRepository(raw.to_string()));
        }
        Ok(Self {
            repository: repository.to_string(),
            reference: reference.to_string(),
        })
    }

    /// The repository path, e.g. `demo/hello`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag or digest, e.g. `v1` or `sha256:…`.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The repository as Docker Hub names it: official images live under `library/`.
    pub(crate) fn docker_hub_repository(&self) -> String {
        if self.repository.contains('/') {
            self.repository.clone()
        } else {
            format!("library/{}", self.repository)
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.reference.contains(':') { '@' } else { ':' };
        write!(f, "{}{sep}{}", self.repository, self.reference)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ImageRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_digest_and_default_tag_are_understood() {
        let tagged = ImageRef::parse("demo/hello:v1").expect("valid");
        assert_eq!((tagged.repository(), tagged.reference()), ("demo/hello", "v1"));
        let digest = ImageRef::parse("demo/hello@sha256:abc").expect("valid");
        assert_eq!(
            (digest.repository(), digest.reference()),
            ("demo/hello", "sha256:abc")
        );
        assert_eq!(ImageRef::parse("alpine").expect("valid").reference(), "latest");
    }

    #[test]
    fn display_round_trips() {
        for raw in ["demo/hello:v1", "demo/hello@sha256:abc"] {
            assert_eq!(ImageRef::parse(raw).expect("valid").to_string(), raw);
        }
    }

    #[test]
    fn official_docker_hub_images_get_the_library_prefix() {
        assert_eq!(
            ImageRef::parse("alpine:3")
                .expect("valid")
                .docker_hub_repository(),
            "library/alpine"
        );
        assert_eq!(
            ImageRef::parse("org/app").expect("valid").docker_hub_repository(),
            "org/app"
        );
    }

    #[test]
    fn malformed_references_are_rejected() {
        assert!(matches!(
            ImageRef::parse(""),
            Err(ImageRefError::EmptyRepository(_))
        ));
        assert!(matches!(
            ImageRef::parse("a//b:v1"),
            Err(ImageRefError::EmptyRepository(_))
        ));
        assert!(matches!(
            ImageRef::parse("demo/hello:"),
            Err(ImageRefError::EmptyReference(_))
        ));
        assert!(matches!(
            ImageRef::parse("Demo/Hello:v1"),
            Err(ImageRefError::InvalidRepository(_))
        ));
        assert!(matches!(
            ImageRef::parse("host:5000/demo"),
            Err(ImageRefError::InvalidRepository(_))
        ));
    }
}
