//! sl-net: streams between machines over QUIC, encrypted and authenticated both ways.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Parser, Subcommand};
use sl_cli::Common;
use sl_net::{Codec, CodecOptions, Fingerprint, Options, Policy};

/// Send and receive streamlib streams between machines over QUIC. Always TLS 1.3; both
/// sides present their machine's key and accept the other only if its fingerprint is pinned
/// (`--peer`, or the allowed-keys file that `sl-net allow` edits).
#[derive(Parser, Debug)]
#[command(
    name = "sl-net",
    version,
    after_help = "Examples:\n  \
      sl-net key                                      # this machine's fingerprint\n  \
      sl-net allow SHA256:...  studio                 # trust the other machine's key\n  \
      sl-net listen :4433 | sl-hls out/               # receive one sender\n  \
      sl-cam | sl-net send quic://edge:4433           # ...and send to it\n  \
      sl-cam | sl-net serve :4433                     # publish to any number of receivers\n  \
      sl-net recv edge:4433 --policy latest | sl-show\n  \
      sl-cam | sl-net send studio:4433 --codec h264   # compressed on the link, raw again after\n  \
      sl-cam | sl-net publish moq://relay:4443/studio # through a MoQ relay, to any number\n  \
      sl-net subscribe moq://relay:4443/studio | sl-show\n\n\
      Policies: block (lossless back-pressure; default for send) and latest (live: a frame\n\
      superseded by a newer one is dropped whole, lag never builds up; default for recv).\n\
      Codecs: raw (default for send), jpeg (default for serve) or h264; the receiver decodes\n\
      back to the frames the sender read. Compressed streams, audio and data pass as they are.\n\
      Exit status: 0 after a complete stream, 1 for a truncated one or a failed link,\n\
      2 for usage errors, 130 after Ctrl-C (the output is ended properly first)."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print this machine's key fingerprint (the key is made on first use).
    Key {
        /// The key file (default: $XDG_CONFIG_HOME/streamlib/net-key.pem); made if it is not
        /// there.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Trust a peer's key: add its fingerprint to the allowed-keys file.
    Allow {
        /// The fingerprint the other machine's `sl-net key` printed.
        fingerprint: Fingerprint,
        /// A note kept next to it (the machine's name).
        #[arg(default_value = "")]
        comment: String,
        /// The allowed-keys file (default: $XDG_CONFIG_HOME/streamlib/allowed_keys).
        #[arg(long, value_name = "FILE")]
        allowed_keys: Option<PathBuf>,
    },
    /// Connect to a listener and push stdin to it.
    Send {
        /// Where the listener is: quic://HOST:PORT, HOST:PORT or [IPv6]:PORT.
        addr: String,
        /// block (lossless, the default) or latest (drop superseded frames, never lag).
        #[arg(long, value_name = "POLICY")]
        policy: Option<Policy>,
        /// Do not reconnect when the connection is lost (exit 1 instead).
        #[arg(long)]
        no_reconnect: bool,
        #[command(flatten)]
        codec: CodecArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Accept one sender and write its stream to stdout.
    Listen {
        /// Where to listen: :PORT (every address, IPv4 and IPv6), HOST:PORT or [IPv6]:PORT.
        addr: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Publish stdin to every receiver that connects, each with its own policy.
    Serve {
        /// Where to listen: :PORT, HOST:PORT or [IPv6]:PORT.
        addr: String,
        /// Read no input until N receivers are connected (so each `block` receiver gets the
        /// whole stream; a `latest` one still drops frames that are stale when it can take them).
        #[arg(long, value_name = "N", default_value_t = 0)]
        wait_for: usize,
        #[command(flatten)]
        codec: CodecArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Connect to a server and write its stream to stdout.
    Recv {
        /// Where the server is: quic://HOST:PORT, HOST:PORT or [IPv6]:PORT.
        addr: String,
        /// latest (the default: live, drop superseded frames) or block (lossless).
        #[arg(long, value_name = "POLICY")]
        policy: Option<Policy>,
        /// Do not reconnect when the connection is lost (exit 1 instead).
        #[arg(long)]
        no_reconnect: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Publish stdin as a broadcast on a Media over QUIC relay (moq-relay).
    Publish {
        /// The relay and broadcast: moq://HOST:PORT/BROADCAST.
        url: String,
        /// Keep groups this long for subscribers that lag or join (default: 2 s for raw
        /// video, 10 s otherwise). Memory: frame size x rate x this, here and in the relay.
        #[arg(long, value_name = "DURATION", value_parser = sl_cli::parse_duration)]
        retention: Option<std::time::Duration>,
        #[command(flatten)]
        moq: MoqArgs,
    },
    /// Subscribe to a broadcast on a Media over QUIC relay and write it to stdout.
    Subscribe {
        /// The relay and broadcast: moq://HOST:PORT/BROADCAST.
        url: String,
        /// latest (the default: skip groups a newer one superseded) or block (every group
        /// the relay still holds, in order).
        #[arg(long, value_name = "POLICY", default_value = "latest")]
        policy: sl_cli::Policy,
        /// Give up after this long without the relay or the broadcast (exit 1).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = sl_cli::parse_duration)]
        reconnect_timeout: std::time::Duration,
        #[command(flatten)]
        moq: MoqArgs,
    },
}

/// How to trust and authenticate to a MoQ relay (docs/moq.md).
#[derive(ClapArgs, Debug)]
struct MoqArgs {
    /// The relay certificate's SHA-256 (64 hex digits). Without it, it is fetched from
    /// http://HOST:PORT/certificate.sha256: trust on first use, for loopback or a LAN.
    #[arg(long, value_name = "SHA256")]
    fingerprint: Option<sl_moq::CertFingerprint>,
    /// A file holding the moq-token JWT the relay's auth server accepts.
    #[arg(long, value_name = "FILE")]
    token: Option<PathBuf>,
}

impl MoqArgs {
    fn token(&self) -> anyhow::Result<Option<String>> {
        self.token
            .as_deref()
            .map(sl_moq::auth::read_token)
            .transpose()
    }
}

/// How raw video is coded on the link; the receiver decodes it back to the frames it was.
#[derive(ClapArgs, Debug)]
struct CodecArgs {
    /// raw, jpeg or h264 [default: raw for send, jpeg for serve]. Compressed streams (a
    /// file's H.264), audio and data always pass as they are.
    #[arg(long, value_name = "CODEC")]
    codec: Option<Codec>,
    /// JPEG quality, 1 to 100.
    #[arg(long, value_name = "Q", default_value_t = sl_net::codec::DEFAULT_QUALITY,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// H.264 bit rate in bits per second (8M, 2500k) [default: about 0.1 bit per pixel,
    /// 6.2M at 1080p30].
    #[arg(long, value_name = "RATE", value_parser = sl_cli::parse_bitrate)]
    bitrate: Option<u64>,
    /// libx264 preset (ultrafast ... veryslow): faster presets take less CPU per frame.
    #[arg(long, value_name = "PRESET", default_value = sl_net::codec::DEFAULT_PRESET,
          value_parser = clap::builder::PossibleValuesParser::new(sl_net::codec::X264_PRESETS))]
    preset: String,
}

impl CodecArgs {
    /// The options, over the role's default codec.
    fn options(self, default: fn() -> CodecOptions) -> Option<CodecOptions> {
        Some(CodecOptions {
            codec: self.codec.unwrap_or(default().codec),
            quality: self.quality,
            bitrate: self.bitrate,
            preset: self.preset,
        })
    }
}

#[derive(ClapArgs, Debug)]
struct NetArgs {
    /// Accept a peer with this key fingerprint (repeatable), besides the allowed-keys file.
    #[arg(long = "peer", value_name = "FINGERPRINT")]
    peers: Vec<Fingerprint>,
    /// The allowed-keys file (default: $XDG_CONFIG_HOME/streamlib/allowed_keys).
    #[arg(long, value_name = "FILE")]
    allowed_keys: Option<PathBuf>,
    /// This machine's key file (default: $XDG_CONFIG_HOME/streamlib/net-key.pem, made on first
    /// use). A file named here must exist: `sl-net key --key FILE` makes one.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// DANGEROUS: accept ANY peer key, so anyone who can reach the port can send or receive
    /// the stream. Still encrypted, but not authenticated.
    #[arg(long)]
    insecure_accept_any_key: bool,
    /// Print rate, bitrate, RTT, loss and dropped frames on stderr every two seconds.
    #[arg(long)]
    stats: bool,
    /// Print the end summary as one JSON object on stderr.
    #[arg(long)]
    json: bool,
}

fn options(net: NetArgs, quiet: bool) -> Options {
    Options {
        key: net.key,
        peers: net.peers,
        allowed_keys: net.allowed_keys,
        insecure_accept_any_key: net.insecure_accept_any_key,
        stats: net.stats,
        json: net.json,
        quiet,
        reconnect: true,
        ..Options::default()
    }
}

fn main() -> ExitCode {
    let code = sl_cli::run(|a: &Args| &a.common, run);
    // a command line that does not parse still ends with the --json summary it asked for
    if let Err(e) = Args::try_parse()
        && e.use_stderr()
    {
        let args: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        sl_net::usage_error_summary(&args, &e.to_string());
    }
    code
}

fn run(args: Args) -> anyhow::Result<()> {
    let quiet = args.common.quiet;
    let Some(command) = args.command else {
        return Err(sl_cli::usage(
            "say what to do: key, allow, send, listen, serve, recv, publish or subscribe",
        ));
    };
    match command {
        Command::Publish {
            url,
            retention,
            moq,
        } => sl_moq::publish(
            &url,
            sl_moq::PublishOptions {
                fingerprint: moq.fingerprint,
                token: moq.token()?,
                retention,
                quiet,
                ..Default::default()
            },
        ),
        Command::Subscribe {
            url,
            policy,
            reconnect_timeout,
            moq,
        } => sl_moq::subscribe(
            &url,
            sl_moq::SubscribeOptions {
                fingerprint: moq.fingerprint,
                token: moq.token()?,
                policy,
                reconnect_timeout,
                quiet,
            },
        ),
        Command::Key { key } => sl_net::key_command(key),
        Command::Allow {
            fingerprint,
            comment,
            allowed_keys,
        } => sl_net::allow_command(fingerprint, &comment, allowed_keys),
        Command::Send {
            addr,
            policy,
            no_reconnect,
            codec,
            net,
        } => sl_net::send(
            &addr,
            Options {
                policy,
                reconnect: !no_reconnect,
                codec: codec.options(CodecOptions::default_for_send),
                ..options(net, quiet)
            },
        ),
        Command::Listen { addr, net } => sl_net::listen(&addr, options(net, quiet)),
        Command::Serve {
            addr,
            wait_for,
            codec,
            net,
        } => sl_net::serve(
            &addr,
            Options {
                wait_for,
                codec: codec.options(CodecOptions::default_for_serve),
                ..options(net, quiet)
            },
        ),
        Command::Recv {
            addr,
            policy,
            no_reconnect,
            net,
        } => sl_net::recv(
            &addr,
            Options {
                policy,
                reconnect: !no_reconnect,
                ..options(net, quiet)
            },
        ),
    }
}
