//! The honesty check of `bench scale` (bench/src/scale.rs): fed the traffic of the `load`
//! benchmark's own runs, the simulator must predict the DynamoDB requests (and posts) those
//! runs made within 5 %. The measured counts are fixtures, `bench/scale/load-measured*.json`,
//! written by `target/debug/bench scale --measure-load [--clients … --load-fixture …]`
//! against moto; this test reads them and needs no network.

use std::path::{Path, PathBuf};

use bench::scale::{Figures, LoadMeasurement, compare_load, comparison_table};

fn fixtures() -> Vec<(PathBuf, LoadMeasurement)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scale");
    let mut found: Vec<(PathBuf, LoadMeasurement)> = std::fs::read_dir(&dir)
        .expect("bench/scale exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("load-measured") && n.ends_with(".json"))
        })
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            let measured = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, measured)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The figures `bench scale` uses: the `requests` section of bench/results/latest.json
/// when there is one, else the defaults from the docs.
fn figures_in_use() -> Figures {
    let latest = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/latest.json");
    let parsed = std::fs::read_to_string(latest).ok().and_then(|text| serde_json::from_str(&text).ok());
    Figures::from_results(parsed.as_ref())
}

fn check(figures: &Figures, name: &str) {
    let runs = fixtures();
    assert!(!runs.is_empty(), "no bench/scale/load-measured*.json: run `target/debug/bench scale --measure-load`");
    for (path, measured) in runs {
        assert!(
            measured.clean && measured.errors.is_empty() && measured.acked == measured.sent,
            "{}: the load run refused or lost sends; the prediction models clean runs only",
            path.display()
        );
        let rows = compare_load(figures, &measured);
        let table = comparison_table(&measured, &rows);
        println!("{name}, {}:\n{table}", path.display());
        for row in &rows {
            // Operations with a handful of requests are checked by the total.
            if row.measured >= 20.0 || row.what.contains("all requests") {
                assert!(
                    row.error().abs() <= 0.05,
                    "{name}, {}: {} off by more than 5 %\n{table}",
                    path.display(),
                    row.what
                );
            }
        }
    }
}

#[test]
fn the_simulator_predicts_the_load_runs_requests_within_5_percent() {
    check(&figures_in_use(), "figures from bench/results/latest.json");
}

#[test]
fn the_documented_defaults_predict_them_too() {
    check(&Figures::default(), "the defaults (docs/DESIGN.md, docs/BENCHMARKS.md)");
}

#[test]
fn the_figures_in_use_come_from_the_measured_requests_when_there_are_some() {
    let latest = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/latest.json");
    let has_requests = std::fs::read_to_string(latest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| v["sections"]["requests"]["data"].is_array());
    let figures = figures_in_use();
    if has_requests {
        assert!(figures.sources["send"].starts_with("measured"), "{:?}", figures.sources);
        assert_eq!(figures.send.values().sum::<f64>(), 4.0, "DESIGN.md: a send is 4 DynamoDB requests");
    }
}
