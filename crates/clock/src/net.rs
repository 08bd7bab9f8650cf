//! The daemon's network side: UDP sockets on ports 319 (event) and 320 (general), joined to
//! 224.0.1.129 on one interface, with the kernel's receive timestamps (SO_TIMESTAMPNS) on
//! event messages so that scheduling delays do not enter the measurement.
//!
//! The kernel stamps with CLOCK_REALTIME; each stamp is moved onto CLOCK_MONOTONIC with the
//! two clocks' difference read right after the receive, so a step of the system clock while
//! running does not disturb the mapping. Delay_Req leaves with a user-space timestamp taken
//! just before `sendto`: the true departure is later, which only ever lengthens the measured
//! delay, and the delay filter keeps the minimum.

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, IpMembershipRequest, MsgFlags, SockFlag, SockType,
    SockaddrIn, bind, recvmsg, setsockopt, socket, sockopt,
};

use crate::msg::{EVENT_PORT, GENERAL_PORT, Message, PTP_PRIMARY_MCAST, PortIdentity};
use crate::{ClockError, real_and_mono};

fn net_err(what: &str, e: impl std::fmt::Display) -> ClockError {
    ClockError::Net(format!("{what}: {e}"))
}

/// The interface to listen on: its IPv4 address (for the multicast join) and its MAC (for
/// our clock identity).
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub addr: Ipv4Addr,
    pub mac: Option<[u8; 6]>,
}

impl Interface {
    /// Look `name` up; with no name, the first interface that is up, not loopback, and has
    /// an IPv4 address.
    pub fn find(name: Option<&str>) -> Result<Interface, ClockError> {
        let addrs: Vec<_> = nix::ifaddrs::getifaddrs()
            .map_err(|e| net_err("listing interfaces", e))?
            .collect();
        let mut names: Vec<String> = Vec::new();
        for a in &addrs {
            if !names.contains(&a.interface_name) {
                names.push(a.interface_name.clone());
            }
        }
        let v4 = |n: &str| {
            addrs.iter().find_map(|a| {
                (a.interface_name == n)
                    .then(|| a.address.as_ref()?.as_sockaddr_in().map(|s| s.ip()))
                    .flatten()
            })
        };
        let mac = |n: &str| {
            addrs.iter().find_map(|a| {
                (a.interface_name == n)
                    .then(|| a.address.as_ref()?.as_link_addr()?.addr())
                    .flatten()
            })
        };
        let chosen = match name {
            Some(n) => n.to_string(),
            None => names
                .iter()
                .find(|n| {
                    *n != "lo"
                        && v4(n).is_some()
                        && addrs.iter().any(|a| {
                            &a.interface_name == *n
                                && a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
                        })
                })
                .cloned()
                .ok_or_else(|| {
                    ClockError::Net(
                        "no interface with an IPv4 address is up: give one with -i".into(),
                    )
                })?,
        };
        let addr = v4(&chosen).ok_or_else(|| {
            ClockError::Net(format!(
                "interface {chosen} has no IPv4 address (interfaces: {}): PTP over UDP/IPv4 needs one",
                names.join(", ")
            ))
        })?;
        Ok(Interface {
            mac: mac(&chosen),
            name: chosen,
            addr,
        })
    }

    /// Our port identity: the EUI-64 made from the MAC (ff:fe in the middle), port 1.
    pub fn port_identity(&self) -> PortIdentity {
        let m = self.mac.unwrap_or_else(|| {
            // no MAC (a tunnel): a locally administered one from the pid and the time
            let x = (std::process::id() as u64) ^ (crate::real_ns() as u64);
            let b = x.to_be_bytes();
            [0x02, b[3], b[4], b[5], b[6], b[7]]
        });
        PortIdentity {
            clock: [m[0], m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]],
            port: 1,
        }
    }
}

/// The two sockets.
#[derive(Debug)]
pub struct PtpSockets {
    event: UdpSocket,
    general: UdpSocket,
}

/// One datagram and its local monotonic receive time.
#[derive(Debug)]
pub struct Received {
    pub bytes: Vec<u8>,
    pub mono_ns: i64,
    /// Whether the kernel timestamped it (event socket); otherwise the time of the read.
    pub kernel_stamp: bool,
}

fn open(port: u16, iface: &Interface) -> Result<UdpSocket, ClockError> {
    let what = |s: &str| format!("port {port}: {s}");
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| net_err(&what("socket"), e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| net_err(&what("SO_REUSEADDR"), e))?;
    // Bound to the device: multicast then leaves by it without a route, and only its
    // packets arrive.
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(&iface.name),
    )
    .map_err(|e| net_err(&what(&format!("binding to {}", iface.name)), e))?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .map_err(|e| net_err(&what("SO_TIMESTAMPNS"), e))?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, port)).map_err(|e| {
        if e == nix::errno::Errno::EACCES {
            ClockError::Net(format!(
                "binding UDP port {port}: permission denied: PTP ports need root (run sl-ptp with sudo, or give it CAP_NET_BIND_SERVICE)"
            ))
        } else {
            net_err(&what("bind"), e)
        }
    })?;
    let group = Ipv4Addr::from(PTP_PRIMARY_MCAST);
    setsockopt(
        &fd,
        sockopt::IpAddMembership,
        &IpMembershipRequest::new(group, Some(iface.addr)),
    )
    .map_err(|e| net_err(&what("joining 224.0.1.129"), e))?;
    setsockopt(&fd, sockopt::IpMulticastLoop, &false)
        .map_err(|e| net_err(&what("IP_MULTICAST_LOOP"), e))?;
    Ok(UdpSocket::from(fd))
}

impl PtpSockets {
    pub fn open(iface: &Interface) -> Result<PtpSockets, ClockError> {
        Ok(PtpSockets {
            event: open(EVENT_PORT, iface)?,
            general: open(GENERAL_PORT, iface)?,
        })
    }

    /// Wait up to `timeout` for datagrams on either socket; return those read.
    pub fn receive(&self, timeout: Duration) -> Result<Vec<Received>, ClockError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [
            PollFd::new(self.event.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.general.as_fd(), PollFlags::POLLIN),
        ];
        let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(e) => return Err(net_err("poll", e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
            .collect();
        let mut out = Vec::new();
        if ready[0] {
            out.extend(recv(&self.event)?);
        }
        if ready[1] {
            out.extend(recv(&self.general)?);
        }
        Ok(out)
    }

    /// Send a Delay_Req to the multicast group; returns the monotonic time just before.
    pub fn send_event(&self, bytes: &[u8]) -> Result<i64, ClockError> {
        let to = SocketAddrV4::new(Ipv4Addr::from(PTP_PRIMARY_MCAST), EVENT_PORT);
        let (_, t) = real_and_mono();
        self.event
            .send_to(bytes, to)
            .map_err(|e| net_err("sending Delay_Req", e))?;
        Ok(t)
    }
}

fn recv(sock: &UdpSocket) -> Result<Option<Received>, ClockError> {
    let mut buf = [0u8; 1500];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let (len, stamp) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = match recvmsg::<SockaddrIn>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(net_err("receive", e)),
        };
        let mut stamp = None;
        if let Ok(cmsgs) = r.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    stamp = Some(ts.tv_sec() * 1_000_000_000 + ts.tv_nsec());
                }
            }
        }
        (r.bytes, stamp)
    };
    let (real, mono) = real_and_mono();
    Ok(Some(Received {
        bytes: buf[..len].to_vec(),
        mono_ns: stamp.map_or(mono, |s| s - (real - mono)),
        kernel_stamp: stamp.is_some(),
    }))
}

/// Parse errors, counted by kind for the log.
pub fn parse(r: &Received) -> Option<Message> {
    match Message::parse(&r.bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            log::debug!("dropped a {}-byte datagram: {e}", r.bytes.len());
            None
        }
    }
}
