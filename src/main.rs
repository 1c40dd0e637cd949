//! The `auditdesk` binary; see `cli.rs`.

fn main() -> std::process::ExitCode {
    auditdesk::cli::main()
}
