fn main() -> std::process::ExitCode {
    sl_convert::main()
}
