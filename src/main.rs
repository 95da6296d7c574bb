//! The `opossum` binary: the command line (the desktop app arrives behind the `gui` feature).

fn main() -> std::process::ExitCode {
    opossum::cli::main()
}
