//! The image mapping: which executable on this machine stands in for a container image.
//!
//! The local cluster has no container runtime, so every image a Pod names must be mapped to a
//! binary. The file is YAML (`images: {<reference without tag/digest>: <path>}`) and paths may
//! use `${VAR}`, expanded from the podlet's environment when the file is loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors loading or using the image mapping file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("reading image mapping {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing image mapping {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("image mapping {path}: entry {image:?}: {reason}")]
    Entry {
        path: PathBuf,
        image: String,
        reason: String,
    },
    #[error("image {image:?} has no mapping in {path}")]
    Unmapped { image: String, path: PathBuf },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    images: BTreeMap<String, String>,
}

/// A loaded image mapping.
#[derive(Debug, Clone)]
pub struct ImageMap {
    path: PathBuf,
    entries: BTreeMap<String, PathBuf>,
}

impl ImageMap {
    /// Loads and validates the mapping file, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImageError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, &|name| std::env::var(name).ok())
    }

    /// Parses mapping text; `env` resolves `${VAR}` references (unset variables are an error,
    /// since a silently empty path would point at the wrong file).
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ImageError> {
        let file: File = serde_yaml::from_str(text).map_err(|source| ImageError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut entries = BTreeMap::new();
        for (image, target) in file.images {
            let entry_err = |reason: String| ImageError::Entry {
                path: path.to_owned(),
                image: image.clone(),
                reason,
            };
            if image.is_empty() || strip_tag(&image) != image {
                return Err(entry_err(
                    "the key must be an image reference without tag or digest".into(),
                ));
            }
            let expanded = expand_braces(&target, env).map_err(entry_err)?;
            if !expanded.starts_with('/') {
                return Err(entry_err(format!(
                    "target {expanded:?} must be an absolute path"
                )));
            }
            entries.insert(image, PathBuf::from(expanded));
        }
        Ok(Self {
            path: path.to_owned(),
            entries,
        })
    }

    /// The executable for an image reference (tag and digest are ignored).
    pub fn resolve(&self, image: &str) -> Result<&Path, ImageError> {
        let key = strip_tag(image);
        let key = key.strip_prefix("docker.io/").unwrap_or(key);
        self.entries
            .get(key)
            .map(PathBuf::as_path)
            .ok_or_else(|| ImageError::Unmapped {
                image: image.to_owned(),
                path: self.path.clone(),
            })
    }

    /// The mapping file's path (named in error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes `@digest` and `:tag` from an image reference (a `:` before the last `/` is a
/// registry port, not a tag).
pub fn strip_tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].find(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    }
}

/// Expands `${VAR}` references; `$$` is a literal `$`.
fn expand_braces(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
            let name = &tail[..end];
            let value =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PYLON_CACHE" => Some("/cache".into()),
            _ => None,
        }
    }

    #[test]
    fn strips_tags_and_digests_but_not_ports() {
        assert_eq!(strip_tag("gcr.io/a/echo:v1"), "gcr.io/a/echo");
        assert_eq!(strip_tag("localhost:5000/echo:v1"), "localhost:5000/echo");
        assert_eq!(strip_tag("localhost:5000/echo"), "localhost:5000/echo");
        assert_eq!(strip_tag("echo@sha256:abc"), "echo");
        assert_eq!(strip_tag("r.io/echo:v2@sha256:abc"), "r.io/echo");
    }

    #[test]
    fn loads_and_resolves() {
        let text =
            "images:\n  gcr.io/x/echo-basic: ${PYLON_CACHE}/bin/echo\n  busybox: /bin/busybox\n";
        let map = ImageMap::parse(Path::new("/m.yaml"), text, &env).unwrap();
        assert_eq!(
            map.resolve("gcr.io/x/echo-basic:v2026").unwrap(),
            Path::new("/cache/bin/echo")
        );
        assert_eq!(
            map.resolve("docker.io/busybox:1").unwrap(),
            Path::new("/bin/busybox")
        );
        let err = map.resolve("nginx:1.25").unwrap_err().to_string();
        assert!(
            err.contains("nginx:1.25") && err.contains("/m.yaml"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_entries() {
        let unset = "images:\n  a: ${NOPE}/x\n";
        let err = ImageMap::parse(Path::new("/m"), unset, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("NOPE"), "{err}");
        let tagged = "images:\n  a:v1: /x\n";
        assert!(ImageMap::parse(Path::new("/m"), tagged, &env).is_err());
        let relative = "images:\n  a: bin/x\n";
        assert!(ImageMap::parse(Path::new("/m"), relative, &env).is_err());
        assert!(ImageMap::parse(Path::new("/m"), "imagez: {}\n", &env).is_err());
    }
}
