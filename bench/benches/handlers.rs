//! Handler CPU without I/O, with criterion's statistics (and its comparison with the
//! previous run): `cargo bench --workspace --bench handlers`. Each operation is recorded
//! once against moto, then replayed in-process (see `bench::cpu`).

use std::sync::Arc;

use criterion::Criterion;

fn main() {
    let recording = tokio::runtime::Runtime::new().expect("a runtime");
    let (world, recorded) = recording.block_on(bench::cpu::record_all());
    let recorded = Arc::new(recorded);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let mut criterion = Criterion::default().configure_from_args();
    for op in recorded.iter() {
        criterion.bench_function(&op.name, |b| b.iter(|| runtime.block_on(op.run_once())));
    }
    criterion.final_summary();
    drop(world);
}
