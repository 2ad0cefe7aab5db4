fn main() -> std::process::ExitCode {
    cue::cli::main()
}
