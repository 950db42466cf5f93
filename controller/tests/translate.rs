//! Golden tests: every `tests/translate/<case>.yaml` (input objects) is translated and the
//! statuses and configs are compared with the insta snapshot `snapshots/translate__<case>.snap`.

use std::path::Path;

use pylon_controller::snapshot::{Options, Snapshot};
use pylon_controller::translate::translate;

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/translate exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() > 10,
        "expected the golden cases in {}",
        dir.display()
    );
    for case in cases {
        let name = case.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&case).unwrap();
        let snapshot = Snapshot::from_yaml(&text, Options::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let before = snapshot.clone();
        let translation = translate(&snapshot);
        assert_eq!(
            snapshot, before,
            "{name}: translate must not mutate its input"
        );
        assert_eq!(
            translation,
            translate(&snapshot),
            "{name}: translate must be deterministic"
        );
        for (gateway, config) in &translation.configs {
            let problems = pylon_config::validate(config);
            assert!(
                problems.is_empty(),
                "{name}: config of {gateway} is invalid: {problems:?}"
            );
        }
        insta::assert_yaml_snapshot!(name, translation);
    }
}
