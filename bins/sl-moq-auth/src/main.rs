//! sl-moq-auth: moq-token keys and JWTs for `sl-net publish/subscribe --token`, and the auth
//! server `moq-relay --auth-url` asks about each session.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sl_cli::Common;
use sl_moq::auth::{Claims, Jwk};

/// Keys and tokens for Media over QUIC relays (moq-token's HS256 JWTs), and the small auth
/// server moq-relay 0.17 needs to check them (`--auth-url http://ADDR/`).
#[derive(Parser, Debug)]
#[command(
    name = "sl-moq-auth",
    version,
    after_help = "Examples:\n  \
      sl-moq-auth key relay.jwk                                  # a new secret key\n  \
      sl-moq-auth sign relay.jwk --root studio --publish '' > pub.jwt\n  \
      sl-moq-auth sign relay.jwk --root studio --subscribe '' > sub.jwt\n  \
      sl-moq-auth serve relay.jwk 127.0.0.1:8080 &\n  \
      moq-relay ... --auth-url http://127.0.0.1:8080/\n  \
      sl-cam | sl-net publish moq://relay:4443/studio --token pub.jwt"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a new random HS256 key (a JWK file, mode 0600).
    Key { file: PathBuf },
    /// Print a JWT signed with the key.
    Sign {
        key: PathBuf,
        /// The path the token is rooted at (the broadcast, or a prefix of broadcasts).
        #[arg(long, default_value = "")]
        root: String,
        /// A prefix under the root the holder may publish ('' is all of it). Repeatable.
        #[arg(long = "publish")]
        publish: Vec<String>,
        /// A prefix under the root the holder may subscribe to. Repeatable.
        #[arg(long = "subscribe")]
        subscribe: Vec<String>,
        /// How long the token is valid (default a day).
        #[arg(long, default_value = "86400s", value_parser = sl_cli::parse_duration)]
        expires: Duration,
    },
    /// Answer moq-relay's per-session questions (--auth-url) with what the JWT grants.
    Serve {
        key: PathBuf,
        /// Where to listen, e.g. 127.0.0.1:8080 (plain HTTP: keep it on loopback).
        addr: String,
    },
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

fn run(args: Args) -> anyhow::Result<()> {
    let Some(command) = args.command else {
        return Err(sl_cli::usage("say what to do: key, sign or serve"));
    };
    match command {
        Command::Key { file } => {
            let jwk = Jwk::generate()?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&file).map_err(|e| {
                anyhow::anyhow!(
                    "creating {}: {e} (an existing key is never overwritten)",
                    file.display()
                )
            })?;
            f.write_all(serde_json::to_string_pretty(&jwk)?.as_bytes())?;
            Ok(())
        }
        Command::Sign {
            key,
            root,
            publish,
            subscribe,
            expires,
        } => {
            if publish.is_empty() && subscribe.is_empty() {
                return Err(sl_cli::usage(
                    "a token must grant something: give --publish and/or --subscribe",
                ));
            }
            let jwk = Jwk::load(&key)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            let claims = Claims {
                root,
                put: publish,
                get: subscribe,
                exp: Some(now.saturating_add(expires.as_secs().min(i64::MAX as u64) as i64)),
                iat: Some(now),
            };
            let token = sl_moq::auth::sign(&jwk, &claims)?;
            let mut out = std::io::stdout();
            writeln!(out, "{token}")?;
            Ok(())
        }
        Command::Serve { key, addr } => {
            let jwk = Jwk::load(&key)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
                eprintln!(
                    "sl-moq-auth: answering moq-relay on http://{}/",
                    listener.local_addr()?
                );
                sl_moq::auth::serve(listener, jwk).await
            })
        }
    }
}
