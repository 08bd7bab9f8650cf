fn main() -> std::process::ExitCode {
    sl_ml::main()
}
