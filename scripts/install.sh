#!/usr/bin/env bash
# Install the stages, their man pages and bash/zsh/fish completions under PREFIX
# (default ~/.local): PREFIX/bin, PREFIX/share/man/man1, and the completion folders bash,
# zsh and fish look in under PREFIX/share. Builds the release binaries first unless
# SL_NO_BUILD=1 (then target/release must hold them).
#
#   scripts/install.sh              # ~/.local: make sure ~/.local/bin is on PATH
#   sudo scripts/install.sh /usr/local
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:-$HOME/.local}
if [[ "${SL_NO_BUILD:-0}" != 1 ]]; then
  cargo build --release --bins
fi
[[ -x target/release/sl ]] || { echo "install.sh: target/release/sl is not built (run cargo build --release --bins)" >&2; exit 1; }
# the stages are the one list in the code (sl_cli::STAGES), as the built sl prints it
mapfile -t STAGES < <(target/release/sl --stages)
(( ${#STAGES[@]} > 0 )) || { echo "install.sh: target/release/sl --stages listed no stage" >&2; exit 1; }
BIN=$PREFIX/bin
MAN=$PREFIX/share/man/man1
BASH=$PREFIX/share/bash-completion/completions
ZSH=$PREFIX/share/zsh/site-functions
FISH=$PREFIX/share/fish/vendor_completions.d
mkdir -p "$BIN" "$MAN" "$BASH" "$ZSH" "$FISH"
for s in "${STAGES[@]}"; do
  src=target/release/$s
  [[ -x $src ]] || { echo "install.sh: $src is not built (run cargo build --release --bins)" >&2; exit 1; }
  install -m 0755 "$src" "$BIN/$s"
  "$src" --man > "$MAN/$s.1"
  "$src" --completions bash > "$BASH/$s"
  "$src" --completions zsh > "$ZSH/_$s"
  "$src" --completions fish > "$FISH/$s.fish"
done
echo "installed ${#STAGES[@]} stages into $BIN, man pages into $MAN, completions for bash, zsh and fish"
case ":$PATH:" in
  *":$BIN:"*) ;;
  *) echo "note: $BIN is not on PATH; add it, e.g. export PATH=\"$BIN:\$PATH\"" ;;
esac
if [[ "$PREFIX" != /usr && "$PREFIX" != /usr/local ]]; then
  echo "note: for man, add $PREFIX/share/man to MANPATH if \`man sl-test\` does not find it"
fi
