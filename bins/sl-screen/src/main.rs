fn main() -> std::process::ExitCode {
    sl_screen::main()
}
