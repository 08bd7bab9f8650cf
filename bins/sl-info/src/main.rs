fn main() -> std::process::ExitCode {
    sl_info::main()
}
