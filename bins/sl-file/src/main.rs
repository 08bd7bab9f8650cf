fn main() -> std::process::ExitCode {
    sl_file::main()
}
