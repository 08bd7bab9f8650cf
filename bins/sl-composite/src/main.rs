fn main() -> std::process::ExitCode {
    sl_composite::main()
}
