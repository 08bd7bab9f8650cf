fn main() -> std::process::ExitCode {
    sl_cam::main()
}
