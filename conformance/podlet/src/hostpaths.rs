//! Mount targets that do not exist on the host: a bind mount needs its target to exist, and
//! mkdir is not namespaced, so the podlet creates such paths on the host, records them in the
//! state directory, and removes them when no Pod uses them any more (or on `cleanup`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Paths the podlet created on the host, and which Pods (by uid) rely on each.
#[derive(Debug)]
pub struct HostPaths {
    record: PathBuf,
    users: Mutex<BTreeMap<PathBuf, BTreeSet<String>>>,
}

impl HostPaths {
    /// `record` is the file listing created paths (read by `cleanup`).
    pub fn new(record: PathBuf) -> Self {
        Self {
            record,
            users: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes sure `target` exists (as a directory, or an empty file when `dir` is false),
    /// creating missing components and recording them as used by `uid`.
    pub fn ensure(&self, uid: &str, target: &Path, dir: bool) -> std::io::Result<()> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        // Every recorded path this target lies under (or is) is now used by this Pod too.
        for (path, set) in users.iter_mut() {
            if target.starts_with(path) {
                set.insert(uid.to_owned());
            }
        }
        if target.symlink_metadata().is_ok() || target.exists() {
            return Ok(());
        }
        let mut missing = vec![];
        let mut cur = target;
        while cur.symlink_metadata().is_err() {
            missing.push(cur.to_owned());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        missing.reverse();
        for (i, path) in missing.iter().enumerate() {
            // Record before creating, so a crash in between still gets cleaned up.
            users
                .entry(path.clone())
                .or_default()
                .insert(uid.to_owned());
            self.save(&users)?;
            if i + 1 == missing.len() && !dir {
                std::fs::File::create(path)?;
            } else {
                std::fs::create_dir(path)?;
            }
        }
        Ok(())
    }

    /// Drops `uid`'s claims and removes paths nobody uses any more.
    pub fn release(&self, uid: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut unused = vec![];
        for (path, set) in users.iter_mut() {
            set.remove(uid);
            if set.is_empty() {
                unused.push(path.clone());
            }
        }
        for path in remove_deepest_first(unused) {
            users.remove(&path);
        }
        let _ = self.save(&users);
    }

    fn save(&self, users: &BTreeMap<PathBuf, BTreeSet<String>>) -> std::io::Result<()> {
        let text: String = users.keys().map(|p| format!("{}\n", p.display())).collect();
        std::fs::write(&self.record, text)
    }
}

/// Removes paths (empty directories, empty files), deepest first; returns those removed or
/// already gone. A path that is not empty is left alone: someone else put something there.
fn remove_deepest_first(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut removed = vec![];
    for path in paths {
        let gone = match path.symlink_metadata() {
            Err(_) => true,
            Ok(m) if m.is_dir() => std::fs::remove_dir(&path).is_ok(),
            Ok(m) if m.len() == 0 => std::fs::remove_file(&path).is_ok(),
            Ok(_) => false,
        };
        if gone {
            removed.push(path);
        }
    }
    removed
}

/// Removes every path listed in a record file (for `pylon-podlet cleanup`).
pub fn cleanup_record(record: &Path) {
    let Ok(text) = std::fs::read_to_string(record) else {
        return;
    };
    let paths: Vec<PathBuf> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    remove_deepest_first(paths);
    let _ = std::fs::remove_file(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_shares_and_removes() {
        let base = std::env::temp_dir().join(format!("pyt-hp-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let hp = HostPaths::new(base.join("record"));
        let target = base.join("a/b/c");
        hp.ensure("pod1", &target, true).unwrap();
        hp.ensure("pod2", &target, true).unwrap();
        hp.ensure("pod2", &base.join("a/file"), false).unwrap();
        assert!(target.is_dir() && base.join("a/file").is_file());
        let record = std::fs::read_to_string(base.join("record")).unwrap();
        assert!(
            record.contains("/a/b/c") && record.contains("/a\n"),
            "{record}"
        );
        hp.release("pod1");
        assert!(target.is_dir(), "pod2 still uses it");
        hp.release("pod2");
        assert!(!base.join("a").exists());
        // A crash leaves the record; cleanup removes what it lists.
        hp.ensure("pod3", &base.join("x/y"), true).unwrap();
        cleanup_record(&base.join("record"));
        assert!(!base.join("x").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
