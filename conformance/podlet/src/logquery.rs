//! Container log files and the kubelet log query semantics, kept pure for testing.
//!
//! Files use the CRI format the kubelet uses: one line per output line,
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>`.

use std::path::{Path, PathBuf};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Errors in a `/containerLogs` query; become HTTP 400.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("query parameter {name}: invalid value {value:?}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("sinceTime and sinceSeconds cannot both be set")]
    BothSince,
}

/// A parsed `/containerLogs` query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since: Option<Timestamp>,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
}

/// Decodes `%XX` and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl LogQuery {
    /// Parses a raw query string; `now` resolves `sinceSeconds`.
    pub fn parse(raw: &str, now: Timestamp) -> Result<Self, QueryError> {
        let mut q = LogQuery::default();
        let mut since_seconds = None;
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name);
            let value = percent_decode(value);
            let invalid = |reason: String| QueryError::Invalid {
                name: name.clone(),
                value: value.clone(),
                reason,
            };
            let boolean = || match value.as_str() {
                "" | "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(invalid("want true or false".into())),
            };
            let number = || {
                value
                    .parse::<i64>()
                    .map_err(|e| invalid(e.to_string()))
                    .and_then(|n| {
                        if n < 0 {
                            Err(invalid("must not be negative".into()))
                        } else {
                            Ok(n)
                        }
                    })
            };
            match name.as_str() {
                "follow" => q.follow = boolean()?,
                "previous" => q.previous = boolean()?,
                "timestamps" => q.timestamps = boolean()?,
                "sinceTime" => {
                    q.since = Some(value.parse().map_err(|e: k8s_openapi::jiff::Error| {
                        invalid(format!("want RFC 3339: {e}"))
                    })?)
                }
                "sinceSeconds" => {
                    let n = number()?;
                    if n == 0 {
                        return Err(invalid("must be positive".into()));
                    }
                    since_seconds = Some(n)
                }
                "tailLines" => q.tail_lines = Some(number()? as usize),
                "limitBytes" => {
                    let n = number()?;
                    if n == 0 {
                        return Err(invalid("must be positive".into()));
                    }
                    q.limit_bytes = Some(n as usize)
                }
                _ => {} // the API server passes others (e.g. insecureSkipTLSVerifyBackend)
            }
        }
        if let Some(secs) = since_seconds {
            if q.since.is_some() {
                return Err(QueryError::BothSince);
            }
            q.since = now.checked_sub(SignedDuration::from_secs(secs)).ok();
        }
        Ok(q)
    }
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub time: Timestamp,
    pub stream: &'a str,
    /// `true` for a complete line (`F`), `false` for a partial one (`P`).
    pub full: bool,
    pub content: &'a str,
}

/// Parses one CRI log line (without its newline); `None` for a malformed line.
pub fn parse_line(line: &str) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?.parse().ok()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or("");
    Some(Entry {
        time,
        stream,
        full: tag != "P",
        content,
    })
}

/// Formats one output line as the container wrote it.
pub fn format_line(time: Timestamp, stream: &str, content: &str) -> String {
    format!("{time} {stream} F {content}\n")
}

/// What a client receives for one entry.
pub fn render_entry(entry: &Entry<'_>, timestamps: bool) -> String {
    let mut out = String::new();
    if timestamps {
        out.push_str(&entry.time.to_string());
        out.push(' ');
    }
    out.push_str(entry.content);
    if entry.full {
        out.push('\n');
    }
    out
}

/// Applies `since`, `tailLines`, `timestamps` and `limitBytes` to a whole log file's text.
/// Returns the bytes to send and how many bytes of the file were consumed (for `follow`).
pub fn render(text: &str, q: &LogQuery) -> String {
    let entries: Vec<Entry<'_>> = text
        .lines()
        .filter_map(parse_line)
        .filter(|e| q.since.is_none_or(|since| e.time >= since))
        .collect();
    let skip = q.tail_lines.map_or(0, |n| entries.len().saturating_sub(n));
    let mut out = String::new();
    for e in &entries[skip..] {
        out.push_str(&render_entry(e, q.timestamps));
    }
    truncate(&mut out, q.limit_bytes);
    out
}

/// Cuts `out` to at most `limit` bytes (on a char boundary).
pub fn truncate(out: &mut String, limit: Option<usize>) {
    if let Some(limit) = limit
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
}

/// Where a container's logs live: `<logs>/<ns>_<pod>_<uid>/<container>/<restart>.log`.
pub fn pod_log_dir(logs_root: &Path, ns: &str, pod: &str, uid: &str) -> PathBuf {
    logs_root.join(format!("{ns}_{pod}_{uid}"))
}

/// The marker written when run `restart` of a container has exited (its log is complete).
pub fn exited_marker(container_log_dir: &Path, restart: i32) -> PathBuf {
    container_log_dir.join(format!("{restart}.exited"))
}

/// The log files of a container, oldest first (by restart count).
pub fn container_logs(logs_root: &Path, ns: &str, pod: &str, container: &str) -> Vec<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    let mut pod_dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(logs_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok();
            (modified.unwrap_or(std::time::UNIX_EPOCH), e.path())
        })
        .collect();
    pod_dirs.sort();
    let Some((_, dir)) = pod_dirs.pop() else {
        return vec![];
    };
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir.join(container))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_suffix(".log")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-11-22T10:00:00.1Z stdout F one\n\
                       2026-11-22T10:00:01.123456789Z stderr F two\n\
                       garbage\n\
                       2026-11-22T10:00:02Z stdout P thr\n\
                       2026-11-22T10:00:02.5Z stdout F ee\n";

    fn now() -> Timestamp {
        "2026-11-22T10:00:03Z".parse().unwrap()
    }

    #[test]
    fn parses_queries() {
        let q = LogQuery::parse(
            "follow=true&timestamps=1&sinceTime=2026-11-22T10%3A00%3A01Z&tailLines=5&limitBytes=9",
            now(),
        )
        .unwrap();
        assert!(q.follow && q.timestamps && !q.previous);
        assert_eq!(q.since, Some("2026-11-22T10:00:01Z".parse().unwrap()));
        assert_eq!((q.tail_lines, q.limit_bytes), (Some(5), Some(9)));
        let q = LogQuery::parse("sinceSeconds=2", now()).unwrap();
        assert_eq!(q.since, Some("2026-11-22T10:00:01Z".parse().unwrap()));
        assert!(LogQuery::parse("tailLines=-1", now()).is_err());
        assert!(LogQuery::parse("sinceTime=yesterday", now()).is_err());
        assert!(LogQuery::parse("follow=maybe", now()).is_err());
        assert_eq!(
            LogQuery::parse("sinceSeconds=1&sinceTime=2026-11-22T10:00:01Z", now()),
            Err(QueryError::BothSince)
        );
    }

    #[test]
    fn renders_with_filters() {
        let all = LogQuery::default();
        assert_eq!(render(LOG, &all), "one\ntwo\nthree\n");
        let since = LogQuery::parse("sinceTime=2026-11-22T10:00:01.123456789Z", now()).unwrap();
        assert_eq!(render(LOG, &since), "two\nthree\n");
        let tail = LogQuery {
            tail_lines: Some(1),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(render(LOG, &tail), "2026-11-22T10:00:02.5Z ee\n");
        let tail0 = LogQuery {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(render(LOG, &tail0), "");
        let limited = LogQuery {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(render(LOG, &limited), "one\ntw");
    }

    #[test]
    fn formats_lines_that_parse_back() {
        let t: Timestamp = "2026-11-22T10:00:00.000000001Z".parse().unwrap();
        let line = format_line(t, "stdout", "hello world");
        let e = parse_line(line.trim_end_matches('\n')).unwrap();
        assert_eq!(
            (e.time, e.stream, e.full, e.content),
            (t, "stdout", true, "hello world")
        );
        assert_eq!(percent_decode("a%3Ab+c%zz"), "a:b c%zz");
    }
}
