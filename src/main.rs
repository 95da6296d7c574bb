//! The `opossum` binary: the command line (the desktop app arrives behind the `gui` feature).

/// Renders allocate and free many tile-sized buffers from several threads; mimalloc reuses
/// them without returning pages to the OS between tiles (measured: see the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    opossum::cli::main()
}
