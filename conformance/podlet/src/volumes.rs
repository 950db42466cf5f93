//! Pod volumes: materialised as files under the Pod's state directory, then bind-mounted at
//! their mountPaths inside the container's mount namespace (see `launch`).
//!
//! Contents are written once when the Pod starts (Secret/ConfigMap updates are not propagated).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::Api;
use kube::api::PostParams;

use crate::environ::PodFacts;
use crate::launch::BindMount;

/// Errors preparing volumes; the message becomes the containers' waiting message.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: {kind} {name:?} not found")]
    Missing {
        volume: String,
        kind: &'static str,
        name: String,
    },
    #[error("volume {volume}: key {key:?} not found in {kind} {name:?}")]
    MissingKey {
        volume: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("volume {volume}: path {path:?} must be relative and must not contain '..'")]
    BadPath { volume: String, path: String },
    #[error(
        "volume {volume}: unsupported volume source (supported: emptyDir, secret, configMap, downwardAPI, projected, hostPath)"
    )]
    Unsupported { volume: String },
    #[error("volume {volume}: {reason}")]
    Field { volume: String, reason: String },
    #[error("volume {volume}: API error: {source}")]
    Api {
        volume: String,
        source: Box<kube::Error>,
    },
    #[error("volumeMount {mount}: no volume of that name")]
    UnknownVolume { mount: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let path = path.to_owned();
    move |source| VolumeError::Io { what, path, source }
}

/// Checks that a key-to-path target stays inside the volume.
fn safe_rel(volume: &str, path: &str) -> Result<PathBuf, VolumeError> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(VolumeError::BadPath {
            volume: volume.into(),
            path: path.into(),
        });
    }
    Ok(p.to_owned())
}

/// A Secret's or ConfigMap's contents and how a volume selects from them.
pub struct Items<'a> {
    pub kind: &'static str,
    pub name: &'a str,
    pub data: &'a BTreeMap<String, Vec<u8>>,
    /// Only these keys (key → path) when given; every key otherwise.
    pub items: Option<&'a [KeyToPath]>,
    pub default_mode: Option<i32>,
    /// Missing keys are skipped instead of failing.
    pub optional: bool,
}

/// Writes a Secret's or ConfigMap's keys into `dir`.
pub fn write_items(volume: &str, dir: &Path, src: Items<'_>) -> Result<(), VolumeError> {
    let Items {
        kind,
        name,
        data,
        items,
        default_mode,
        optional,
    } = src;
    let files: Vec<(PathBuf, &Vec<u8>, Option<i32>)> = match items {
        Some(items) => {
            let mut out = vec![];
            for item in items {
                match data.get(&item.key) {
                    Some(v) => out.push((safe_rel(volume, &item.path)?, v, item.mode)),
                    None if optional => {}
                    None => {
                        return Err(VolumeError::MissingKey {
                            volume: volume.into(),
                            kind,
                            name: name.into(),
                            key: item.key.clone(),
                        });
                    }
                }
            }
            out
        }
        None => data
            .iter()
            .map(|(k, v)| Ok((safe_rel(volume, k)?, v, None)))
            .collect::<Result<_, VolumeError>>()?,
    };
    for (rel, bytes, mode) in files {
        write_file(
            &dir.join(rel),
            bytes,
            mode.or(default_mode).unwrap_or(0o644),
        )?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: i32) -> Result<(), VolumeError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    // Write aside and rename, so a container reading the file during a refresh sees either
    // the old or the new contents, never a partial file.
    let tmp = path.with_file_name(format!(
        ".{}.pylon-tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    std::fs::write(&tmp, bytes).map_err(io("writing", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode as u32 & 0o777))
        .map_err(io("chmod", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into place", path))
}

/// Resolves a downward API field for a volume file.
fn downward_value(
    volume: &str,
    pod: &Pod,
    facts: &PodFacts,
    f: &DownwardAPIVolumeFile,
) -> Result<Vec<u8>, VolumeError> {
    let field = |reason: String| VolumeError::Field {
        volume: volume.into(),
        reason,
    };
    let Some(r) = &f.field_ref else {
        return Err(field(format!("{}: only fieldRef is supported", f.path)));
    };
    let render_map = |m: Option<&BTreeMap<String, String>>| {
        m.into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    let value = match r.field_path.as_str() {
        "metadata.labels" => render_map(pod.metadata.labels.as_ref()),
        "metadata.annotations" => render_map(pod.metadata.annotations.as_ref()),
        path => {
            let c = Container {
                env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
                    name: "X".into(),
                    value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                        field_ref: Some(r.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            };
            let env = crate::environ::build_env(pod, &c, facts, &Default::default())
                .map_err(|e| field(format!("{}: {e}", path)))?;
            env.into_iter()
                .find(|(k, _)| k == "X")
                .map(|(_, v)| v)
                .unwrap_or_default()
        }
    };
    Ok(value.into_bytes())
}

/// Materialises every volume of `pod` under `root/<volume name>`; returns name → host path.
///
/// `fresh` starts from empty directories (Pod start). A refresh (`fresh == false`) rewrites
/// Secret, ConfigMap and downward API contents in place (atomically per file, so running
/// containers see updates through their bind mounts), leaves emptyDirs alone, and keeps
/// service-account tokens (they are requested with the API server's extended lifetime).
pub async fn materialize(
    client: &kube::Client,
    pod: &Pod,
    facts: &PodFacts,
    root: &Path,
    fresh: bool,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut out = BTreeMap::new();
    let volumes: &[Volume] = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[]);
    for v in volumes {
        let name = v.name.as_str();
        let api_err = |source| VolumeError::Api {
            volume: name.into(),
            source: Box::new(source),
        };
        if let Some(hp) = &v.host_path {
            out.insert(name.into(), PathBuf::from(&hp.path));
            continue;
        }
        let dir = root.join(name);
        if fresh {
            // Rewrite from scratch so a restarted Pod never sees stale keys.
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        if v.empty_dir.is_some() {
        } else if let Some(s) = &v.secret {
            let sname = s.secret_name.clone().unwrap_or_default();
            let optional = s.optional == Some(true);
            match secrets.get_opt(&sname).await.map_err(api_err)? {
                Some(secret) => {
                    let data = secret_data(&secret);
                    write_items(
                        name,
                        &dir,
                        Items {
                            kind: "Secret",
                            name: &sname,
                            data: &data,
                            items: s.items.as_deref(),
                            default_mode: s.default_mode,
                            optional,
                        },
                    )?;
                }
                None if optional => {}
                None => return Err(missing(name, "Secret", &sname)),
            }
        } else if let Some(c) = &v.config_map {
            let optional = c.optional == Some(true);
            match config_maps.get_opt(&c.name).await.map_err(api_err)? {
                Some(cm) => {
                    let data = config_map_data(&cm);
                    write_items(
                        name,
                        &dir,
                        Items {
                            kind: "ConfigMap",
                            name: &c.name,
                            data: &data,
                            items: c.items.as_deref(),
                            default_mode: c.default_mode,
                            optional,
                        },
                    )?;
                }
                None if optional => {}
                None => return Err(missing(name, "ConfigMap", &c.name)),
            }
        } else if let Some(d) = &v.downward_api {
            for f in d.items.iter().flatten() {
                let bytes = downward_value(name, pod, facts, f)?;
                write_file(
                    &dir.join(safe_rel(name, &f.path)?),
                    &bytes,
                    f.mode.or(d.default_mode).unwrap_or(0o644),
                )?;
            }
        } else if let Some(p) = &v.projected {
            for src in p.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    if !fresh {
                        continue;
                    }
                    let token =
                        request_token(client, pod, t.audience.clone(), t.expiration_seconds)
                            .await
                            .map_err(api_err)?;
                    write_file(
                        &dir.join(safe_rel(name, &t.path)?),
                        token.as_bytes(),
                        p.default_mode.unwrap_or(0o644),
                    )?;
                } else if let Some(c) = &src.config_map {
                    let optional = c.optional == Some(true);
                    match config_maps.get_opt(&c.name).await.map_err(api_err)? {
                        Some(cm) => write_items(
                            name,
                            &dir,
                            Items {
                                kind: "ConfigMap",
                                name: &c.name,
                                data: &config_map_data(&cm),
                                items: c.items.as_deref(),
                                default_mode: p.default_mode,
                                optional,
                            },
                        )?,
                        None if optional => {}
                        None => return Err(missing(name, "ConfigMap", &c.name)),
                    }
                } else if let Some(s) = &src.secret {
                    let optional = s.optional == Some(true);
                    match secrets.get_opt(&s.name).await.map_err(api_err)? {
                        Some(secret) => write_items(
                            name,
                            &dir,
                            Items {
                                kind: "Secret",
                                name: &s.name,
                                data: &secret_data(&secret),
                                items: s.items.as_deref(),
                                default_mode: p.default_mode,
                                optional,
                            },
                        )?,
                        None if optional => {}
                        None => return Err(missing(name, "Secret", &s.name)),
                    }
                } else if let Some(d) = &src.downward_api {
                    for f in d.items.iter().flatten() {
                        let bytes = downward_value(name, pod, facts, f)?;
                        write_file(
                            &dir.join(safe_rel(name, &f.path)?),
                            &bytes,
                            f.mode.or(p.default_mode).unwrap_or(0o644),
                        )?;
                    }
                }
            }
        } else {
            return Err(VolumeError::Unsupported {
                volume: name.into(),
            });
        }
        out.insert(name.into(), dir);
    }
    Ok(out)
}

fn missing(volume: &str, kind: &'static str, name: &str) -> VolumeError {
    VolumeError::Missing {
        volume: volume.into(),
        kind,
        name: name.into(),
    }
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

fn config_map_data(c: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = c
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in c.data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

/// Requests a token for the Pod's service account, bound to the Pod (TokenRequest API).
async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<String>,
    expiration_seconds: Option<i64>,
) -> Result<String, kube::Error> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(expiration_seconds.unwrap_or(3607)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let out: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &request)
        .await?;
    Ok(out.status.map(|s| s.token).unwrap_or_default())
}

/// The bind mounts for one container: its volumeMounts, plus the Pod's resolv.conf and hosts.
pub fn container_mounts(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    etc_files: &[(PathBuf, PathBuf)],
) -> Result<Vec<BindMount>, VolumeError> {
    let mut mounts: Vec<BindMount> = etc_files
        .iter()
        .map(|(source, target)| BindMount {
            source: source.clone(),
            target: target.clone(),
            read_only: false,
        })
        .collect();
    for vm in container.volume_mounts.iter().flatten() {
        let base = volumes
            .get(&vm.name)
            .ok_or_else(|| VolumeError::UnknownVolume {
                mount: vm.name.clone(),
            })?;
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => base.join(safe_rel(&vm.name, sub)?),
            None => base.clone(),
        };
        mounts.push(BindMount {
            source,
            target: PathBuf::from(&vm.mount_path),
            read_only: vm.read_only == Some(true),
        });
    }
    // Parents before children, so a nested mountPath is not hidden by its parent's mount.
    mounts.sort_by_key(|m| m.target.components().count());
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    #[test]
    fn writes_selected_items_and_rejects_escapes() {
        let dir = std::env::temp_dir().join(format!("pyt-vol-{}", std::process::id()));
        let data = BTreeMap::from([
            ("tls.crt".to_string(), b"CERT".to_vec()),
            ("tls.key".to_string(), b"KEY".to_vec()),
        ]);
        let items = vec![KeyToPath {
            key: "tls.crt".into(),
            path: "sub/crt".into(),
            mode: Some(0o600),
        }];
        write_items(
            "v",
            &dir,
            Items {
                kind: "Secret",
                name: "s",
                data: &data,
                items: Some(&items),
                default_mode: None,
                optional: false,
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join("sub/crt")).unwrap(), b"CERT");
        // A refresh replaces the contents in place and leaves no temporary file behind.
        let newer = BTreeMap::from([("tls.crt".to_string(), b"CERT2".to_vec())]);
        write_items(
            "v",
            &dir,
            Items {
                kind: "Secret",
                name: "s",
                data: &newer,
                items: Some(&items),
                default_mode: None,
                optional: false,
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join("sub/crt")).unwrap(), b"CERT2");
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 1);
        assert!(!dir.join("tls.key").exists());
        let mode = std::fs::metadata(dir.join("sub/crt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let bad = vec![KeyToPath {
            key: "tls.key".into(),
            path: "../escape".into(),
            mode: None,
        }];
        let err = write_items(
            "v",
            &dir,
            Items {
                kind: "Secret",
                name: "s",
                data: &data,
                items: Some(&bad),
                default_mode: None,
                optional: false,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("../escape"), "{err}");
        let absent = vec![KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }];
        assert!(
            write_items(
                "v",
                &dir,
                Items {
                    kind: "Secret",
                    name: "s",
                    data: &data,
                    items: Some(&absent),
                    default_mode: None,
                    optional: false
                }
            )
            .is_err()
        );
        write_items(
            "v",
            &dir,
            Items {
                kind: "Secret",
                name: "s",
                data: &data,
                items: Some(&absent),
                default_mode: None,
                optional: true,
            },
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mounts_are_ordered_and_checked() {
        let c = Container {
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "tok".into(),
                    mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "conf".into(),
                    mount_path: "/root".into(),
                    sub_path: Some("Corefile".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let vols = BTreeMap::from([
            ("tok".to_string(), PathBuf::from("/s/tok")),
            ("conf".to_string(), PathBuf::from("/s/conf")),
        ]);
        let m = container_mounts(&c, &vols, &[]).unwrap();
        assert_eq!(m[0].source, PathBuf::from("/s/conf/Corefile"));
        assert!(m[1].read_only);
        let missing = container_mounts(&c, &BTreeMap::new(), &[]).unwrap_err();
        assert!(missing.to_string().contains("tok"));
    }
}
