//! Build script of every function (and of `bench/hello-lambda`, measured beside them):
//! release binaries are linked as plain executables, not position-independent ones.
//!
//! A PIE binary is relocated by the dynamic loader before `main`: each function carries
//! ~34,000 relative relocations (the SDK's vtables and static tables), and applying them
//! wrote to ~140 pages and took most of the time to the first Runtime API request
//! (`perf`: `_dl_relocate_object` and its page faults; docs/BENCHMARKS.md "Cold start").
//! Linked at a fixed address there is nothing to relocate. What that gives up is the
//! randomised address of the binary's own code (the heap, the stack and libc stay
//! randomised), as Go's default Lambda builds have always done. Only binaries, and only the
//! release-based profiles: tests and libraries build as before.
fn main() {
    println!("cargo:rerun-if-changed={}", file!());
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
