# Shared by the bench scripts (source it): the ffmpeg side of the HUD workload, raw frames
# out of a streamlib stream, and ports on loopback.

# free_port: a TCP/UDP port on 127.0.0.1 that nothing uses right now.
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# wait_udp PORT [NETNS] / wait_tcp PORT [NETNS]: until something listens there, in network
# namespace NETNS if given (10 s at most; 1 if not).
wait_listen() { # u|t PORT [NETNS]
  local in=(); [ -z "${3:-}" ] || in=(ip netns exec "$3")
  for _ in $(seq 200); do "${in[@]}" ss -Hl"$1"n "sport = :$2" | grep -q . && return 0; sleep 0.05; done
  return 1
}
wait_udp() { wait_listen u "$@"; }
wait_tcp() { wait_listen t "$@"; }

# hud_vf FONT: ffmpeg's filter for what examples/hud.rhai draws: a background panel, 10
# shapes (drawbox cannot draw circles, so its 5 circles are filled boxes) and 3 lines of text.
hud_vf() {
  local vf="drawbox=x=40:y=40:w=560:h=220:color=black@0.6:t=fill" i x
  for i in 0 1 2 3 4; do
    x=$((80 + i * 100))
    vf+=",drawbox=x=$((x - 30)):y=ih-150:w=60:h=60:color=0xff8000@0.75:t=fill"
    vf+=",drawbox=x=$((x - 40)):y=ih-200:w=80:h=40:color=0x00c0ff:t=4"
  done
  vf+=",drawtext=fontfile=$1:text='streamlib HUD':x=70:y=70:fontsize=40:fontcolor=white"
  vf+=",drawtext=fontfile=$1:text='frame %{n}':x=70:y=130:fontsize=32:fontcolor=0xffd400"
  vf+=",drawtext=fontfile=$1:text='t = %{pts}':x=70:y=190:fontsize=32:fontcolor=0xa0ffa0"
  echo "$vf"
}

# strip_framing BYTES < stream > raw: the payloads of the video frames of BYTES bytes, without
# the streamlib framing (for ffmpeg -f rawvideo).
strip_framing() {
  python3 -c '
import sys
size = int(sys.argv[1])
r, w = sys.stdin.buffer, sys.stdout.buffer
r.read(16)                                   # stream header
while True:
    p = r.read(16)                           # message prefix
    if len(p) < 16:
        break
    hl = int.from_bytes(p[4:8], "little")
    pl = int.from_bytes(p[8:16], "little")
    r.read(hl)
    data = r.read(pl)
    if p[0] == 2 and pl == size:             # a video frame
        w.write(data)
' "$1"
}
