//! What a benchmark run prints (plain tables), keeps (a JSON file, one entry per section,
//! each with the command that produced it) and draws (latency distributions as SVG).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::coldstart::ColdStart;
use crate::cpu::CpuResult;
use crate::latency::CaseResult;
use crate::requests::RequestRow;
use crate::stats::Summary;

/// A plain text table with aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn f(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

fn pcts(s: &Summary) -> String {
    if s.n == 0 {
        return "-".into();
    }
    format!("{} / {} / {} / {}", f(s.p50), f(s.p90), f(s.p99), f(s.max))
}

pub fn requests_table(rows: &[RequestRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.operation.clone(),
                r.dynamodb.to_string(),
                r.dynamodb_breakdown(),
                r.management_posts.to_string(),
                r.sns.to_string(),
                r.s3.to_string(),
                r.rounds_before_post.map_or("-".into(), |n| n.to_string()),
                format!("{:.1}", r.units.write),
                format!("{:.1}", r.units.index_write),
                format!("{:.1}", r.units.read),
                r.answer.clone(),
            ]
        })
        .collect();
    table(
        &[
            "operation",
            "DynamoDB",
            "DynamoDB by operation",
            "posts",
            "SNS",
            "S3",
            "round trips before 1st post",
            "WRU",
            "index WRU",
            "RRU",
            "answer",
        ],
        &rows,
    )
}

pub fn latency_table(results: &[CaseResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                if r.verdict.is_empty() { r.case.name.clone() } else { format!("{}: {}", r.case.name, r.verdict) },
                format!("{}/{}", r.delivered, r.case.messages),
                r.offered_per_s.map_or("-".into(), f),
                f(r.achieved_per_s),
                pcts(&r.to_all_ms),
                pcts(&r.dynamodb_ms),
                pcts(&r.own_ms),
                format!("{}", r.own_ms.n),
                errors_cell(r),
            ]
        })
        .collect();
    table(
        &[
            "case",
            "delivered",
            "offered/s",
            "achieved/s",
            "to all recipients ms p50/p90/p99/max",
            "of it DynamoDB (moto) ms",
            "own (ours + gateway) ms",
            "alone in flight",
            "errors",
        ],
        &rows,
    )
}

fn errors_cell(r: &CaseResult) -> String {
    let mut cell = if r.error_codes.is_empty() {
        "0".to_owned()
    } else {
        r.error_codes.iter().map(|(code, n)| format!("{n} {code}")).collect::<Vec<_>>().join(", ")
    };
    if r.incomplete > 0 {
        cell.push_str(&format!(" ({} not delivered to all)", r.incomplete));
    }
    cell
}

pub fn cpu_table(results: &[CpuResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.operation.clone(),
                f(r.cpu_us),
                format!("{} / {} / {}", f(r.wall_us.p50), f(r.wall_us.p99), f(r.wall_us.max)),
                r.aws_calls_replayed.to_string(),
                r.iterations.to_string(),
            ]
        })
        .collect();
    table(&["operation", "CPU µs per run", "wall µs p50 / p99 / max", "AWS calls (replayed)", "runs"], &rows)
}

pub fn coldstart_table(results: &[ColdStart]) -> String {
    let mb = |b: u64| format!("{:.2}", b as f64 / 1e6);
    let floor = results
        .iter()
        .find(|r| r.function == crate::coldstart::BASELINE)
        .map(|r| r.to_first_request_ms.p50)
        .filter(|p50| *p50 > 0.0);
    let times_floor = |p50: f64| floor.map(|floor| format!("{:.1}×", p50 / floor)).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.function.clone(),
                mb(r.size_bytes),
                mb(r.zipped_bytes),
                format!(
                    "{} ({}-{})",
                    f(r.to_first_request_ms.p50),
                    f(r.to_first_request_ms.min),
                    f(r.to_first_request_ms.max)
                ),
                times_floor(r.to_first_request_ms.p50),
                f(r.first_invocation_ms.p50),
                format!("{:.1}", r.peak_rss_kib as f64 / 1024.0),
                r.outcome.chars().take(60).collect(),
            ]
        })
        .collect();
    table(
        &[
            "function",
            "size MB",
            "zipped MB",
            "to 1st Runtime API request ms, median (min-max)",
            "× hello world",
            "1st event ms",
            "peak RSS MiB",
            "first event",
        ],
        &rows,
    )
}

/// The results file: sections by name, each with the command that produced it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ResultsFile {
    pub machine: Value,
    pub sections: BTreeMap<String, Section>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Section {
    pub command: String,
    pub generated_at: String,
    pub git_commit: Option<String>,
    pub table: String,
    pub data: Value,
}

/// Replaces the sections in `new` in the file at `path`, keeping the others.
pub fn merge_into(path: &Path, machine: Value, new: BTreeMap<String, Section>) -> std::io::Result<()> {
    let mut file: ResultsFile =
        std::fs::read_to_string(path).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
    file.machine = machine;
    file.sections.extend(new);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&file).expect("results serialise") + "\n")
}

/// Cumulative distributions of delivery latency (to the last recipient), log time axis:
/// ours at steady and highest rates on the left, ours against the scan baseline on the right.
pub fn plot_latency(path: &Path, results: &[CaseResult]) -> Result<(), String> {
    let root = SVGBackend::new(path, (1400, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(700);
    let paced: Vec<&CaseResult> = results.iter().filter(|r| r.case.pace != crate::latency::Pace::OneAtATime).collect();
    let side_by_side: Vec<&CaseResult> =
        results.iter().filter(|r| r.case.pace == crate::latency::Pace::OneAtATime).collect();
    panel(&left, "Delivery latency, presence fan-out (local stack)", &paced)?;
    panel(&right, "One send at a time: presence vs scan fan-out", &side_by_side)?;
    root.present().map_err(|e| e.to_string())
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    cases: &[&CaseResult],
) -> Result<(), String> {
    let all = || cases.iter().flat_map(|c| c.to_all_samples.iter().copied());
    let max = all().fold(10.0_f64, f64::max) * 1.3;
    let min = all().fold(max, f64::min).max(0.5) * 0.7;
    // Room above 100% for the legend.
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((min..max).log_scale(), 0.0..1.6)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("ms from send to the last recipient (log scale)")
        .y_desc("share of messages delivered")
        .x_labels(8)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_labels(17)
        .y_label_formatter(&|v| if *v <= 1.0001 { format!("{:.0}%", v * 100.0) } else { String::new() })
        .max_light_lines(0)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, case) in cases.iter().enumerate() {
        let mut samples = case.to_all_samples.clone();
        samples.sort_by(|a, b| a.total_cmp(b));
        let n = samples.len() as f64;
        // A step function: the share of messages delivered within each time.
        let mut points = Vec::with_capacity(samples.len() * 2);
        for (k, v) in samples.iter().enumerate() {
            points.push((*v, k as f64 / n));
            points.push((*v, (k + 1) as f64 / n));
        }
        let color = Palette99::pick(i).to_rgba();
        let width = if case.case.fanout == crate::latency::Fanout::Scan { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(width)))
            .map_err(|e| e.to_string())?
            .label(case.case.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::{Case, Fanout, Pace};

    fn result(name: &str, fanout: Fanout, pace: Pace, samples: Vec<f64>) -> CaseResult {
        CaseResult {
            case: Case { name: name.into(), fanout, members: 2, lanes: 1, stored: 0, pace, messages: samples.len() },
            offered_per_s: None,
            achieved_per_s: 1.0,
            delivered: samples.len(),
            errors: 0,
            incomplete: 0,
            to_all_ms: Summary::of(&samples),
            per_recipient_ms: Summary::of(&samples),
            ack_ms: Summary::of(&samples),
            dynamodb_ms: Summary::default(),
            own_ms: Summary::default(),
            overlapping: 0,
            error_codes: Default::default(),
            verdict: String::new(),
            to_all_samples: samples,
        }
    }

    #[test]
    fn the_plot_has_a_curve_and_a_legend_entry_per_case() {
        let results = vec![
            result("fast steady", Fanout::Presence, Pace::Steady(5.0), (1..=50).map(f64::from).collect()),
            result(
                "scan side by side",
                Fanout::Scan,
                Pace::OneAtATime,
                (1..=20).map(|v| f64::from(v) * 100.0).collect(),
            ),
        ];
        let path = std::env::temp_dir().join(format!("bench-plot-{}.svg", std::process::id()));
        plot_latency(&path, &results).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::copy(&path, std::env::temp_dir().join("bench-plot-test.svg")).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.contains("fast steady") && svg.contains("scan side by side"));
        // The scan case is drawn thicker: its curve and its legend mark.
        assert_eq!(svg.matches("stroke-width=\"3\"").count(), 2, "{svg}");
    }

    #[test]
    fn tables_align_their_columns() {
        let text = table(&["a", "bb"], &[vec!["long cell".into(), "x".into()]]);
        let widths: Vec<usize> = text.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}
