fn main() -> std::process::ExitCode {
    sl_test::main()
}
