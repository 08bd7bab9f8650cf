fn main() -> std::process::ExitCode {
    sl_hls::main()
}
