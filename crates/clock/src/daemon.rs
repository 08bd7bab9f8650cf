//! The `sl-ptp` daemon's loop: receive, feed the slave, send Delay_Req when due, publish.

use std::path::Path;
use std::time::Duration;

use crate::msg::Body;
use crate::net::{Interface, PtpSockets, parse};
use crate::publish::{Publisher, Snapshot};
use crate::servo::Slave;
use crate::{ClockError, mono_ns};

fn snapshot(slave: &Slave, domain: u8) -> Snapshot {
    let gm = slave.grandmaster();
    Snapshot {
        state: slave.state(),
        domain,
        master: slave.master().map(|p| p.to_string()),
        grandmaster: gm.map(|(id, _)| {
            crate::msg::PortIdentity { clock: id, port: 0 }
                .to_string()
                .trim_end_matches("-0")
                .to_string()
        }),
        mapping: slave.mapping(),
        delay_ns: slave.delay_ns(),
        utc_offset: gm.map(|(_, a)| a.utc_offset),
        ptp_timescale: gm.map(|(_, a)| a.ptp_timescale),
        counters: slave.counters,
        pid: std::process::id(),
    }
}

/// Run until `stop()` says so: follow the best master in `domain` on `iface`, publish at
/// `socket`.
pub fn run(
    iface: Option<&str>,
    domain: u8,
    socket: &Path,
    stop: impl Fn() -> bool,
) -> Result<(), ClockError> {
    let iface = Interface::find(iface)?;
    let me = iface.port_identity();
    let sockets = PtpSockets::open(&iface)?;
    let publisher = Publisher::bind(socket)?;
    log::info!(
        "listening on {} ({}) in domain {domain} as {me}; publishing at {}",
        iface.name,
        iface.addr,
        socket.display()
    );
    let mut slave = Slave::new(domain, me);
    let mut last_state = slave.state();
    let mut last_publish = mono_ns();
    let mut bad = 0u64;
    publisher.publish(&snapshot(&slave, domain));
    while !stop() {
        let mut changed = false;
        for r in sockets.receive(Duration::from_millis(100))? {
            match parse(&r) {
                Some(m) => {
                    let event = matches!(m.body, Body::Sync { .. } | Body::DelayReq { .. });
                    if event && !r.kernel_stamp {
                        log::debug!("an event message without a kernel timestamp");
                    }
                    changed |= slave.handle(&m, r.mono_ns);
                }
                None => {
                    bad += 1;
                    if bad.is_power_of_two() {
                        log::warn!("{bad} malformed or unhandled PTP datagrams dropped so far");
                    }
                }
            }
        }
        let now = mono_ns();
        let (state_changed, out) = slave.poll(now);
        if let Some(out) = out {
            match sockets.send_event(&out.bytes) {
                Ok(t3) => slave.delay_req_sent(out.sequence, t3),
                Err(e) => log::warn!("{e}"),
            }
        }
        let state = slave.state();
        if state != last_state {
            log::info!("state {} -> {}", last_state.name(), state.name());
            last_state = state;
        }
        if changed || state_changed || now - last_publish >= 1_000_000_000 {
            publisher.publish(&snapshot(&slave, domain));
            last_publish = now;
        }
    }
    Ok(())
}
