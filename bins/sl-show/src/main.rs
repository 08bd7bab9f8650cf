fn main() -> std::process::ExitCode {
    sl_show::main()
}
