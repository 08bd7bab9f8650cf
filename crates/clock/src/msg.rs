//! PTPv2 (IEEE 1588-2008/2019) messages over UDP: the five the E2E delay mechanism needs.
//!
//! Parsing is defensive: every length is checked before it is read, a message shorter than its
//! type requires, a version other than 2, a nanoseconds field of 10^9 or more, or a message
//! type we do not handle is a [`ParseError`], never a panic. Bytes past `messageLength` (UDP
//! padding) are ignored; a `messageLength` longer than the datagram is an error.

use std::fmt;

/// The multicast group of PTP over UDP/IPv4 (all messages but peer delay).
pub const PTP_PRIMARY_MCAST: [u8; 4] = [224, 0, 1, 129];
/// UDP port of event messages (Sync, Delay_Req): timestamped on receipt.
pub const EVENT_PORT: u16 = 319;
/// UDP port of general messages (Announce, Follow_Up, Delay_Resp).
pub const GENERAL_PORT: u16 = 320;

const HEADER_LEN: usize = 34;
const TIMESTAMP_LEN: usize = 10;

/// What went wrong parsing a datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0} bytes is shorter than the {1} bytes this message needs")]
    Short(usize, usize),
    #[error("PTP version {0}, only version 2 is understood")]
    Version(u8),
    #[error("messageLength {0} is longer than the {1}-byte datagram")]
    Length(usize, usize),
    #[error("nanoseconds field {0} is not below 10^9")]
    Nanoseconds(u32),
    #[error("seconds field {0} is out of range")]
    Seconds(u64),
    #[error("message type {0:#x} is not one a slave handles")]
    Unhandled(u8),
}

/// clockIdentity (EUI-64) and port number of a PTP port.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PortIdentity {
    pub clock: [u8; 8],
    pub port: u16,
}

impl fmt::Display for PortIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.clock;
        write!(
            f,
            "{:02x}{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}{:02x}-{}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], self.port
        )
    }
}

impl fmt::Debug for PortIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The common header of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub domain: u8,
    /// flagField byte 0 bit 1: a Follow_Up carries the precise origin time.
    pub two_step: bool,
    /// correctionField in nanoseconds (the wire carries ns * 2^16; fractions are dropped).
    pub correction_ns: i64,
    pub source: PortIdentity,
    pub sequence: u16,
    pub log_interval: i8,
}

/// The clock quality and priorities an Announce carries, compared by the best-master choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    pub utc_offset: i16,
    pub priority1: u8,
    pub clock_class: u8,
    pub clock_accuracy: u8,
    pub variance: u16,
    pub priority2: u8,
    pub grandmaster: [u8; 8],
    pub steps_removed: u16,
    pub time_source: u8,
    /// flagField byte 1 bit 3: the timescale is PTP (TAI), not arbitrary.
    pub ptp_timescale: bool,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// originTimestamp: precise for a one-step master, approximate for a two-step one.
    Sync {
        origin_ns: i64,
    },
    DelayReq {
        origin_ns: i64,
    },
    FollowUp {
        precise_origin_ns: i64,
    },
    DelayResp {
        receive_ns: i64,
        requesting: PortIdentity,
    },
    Announce(Announce),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

const SYNC: u8 = 0x0;
const DELAY_REQ: u8 = 0x1;
const FOLLOW_UP: u8 = 0x8;
const DELAY_RESP: u8 = 0x9;
const ANNOUNCE: u8 = 0xB;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn identity_at(b: &[u8], i: usize) -> PortIdentity {
    let mut clock = [0u8; 8];
    clock.copy_from_slice(&b[i..i + 8]);
    PortIdentity {
        clock,
        port: u16_at(b, i + 8),
    }
}

/// Largest seconds value whose nanoseconds fit an i64 (the year 2262).
const MAX_SECONDS: u64 = (i64::MAX / 1_000_000_000) as u64 - 1;

fn timestamp_at(b: &[u8], i: usize) -> Result<i64, ParseError> {
    let mut s = [0u8; 8];
    s[2..].copy_from_slice(&b[i..i + 6]);
    let secs = u64::from_be_bytes(s);
    let nanos = u32::from_be_bytes([b[i + 6], b[i + 7], b[i + 8], b[i + 9]]);
    if nanos >= 1_000_000_000 {
        return Err(ParseError::Nanoseconds(nanos));
    }
    if secs > MAX_SECONDS {
        return Err(ParseError::Seconds(secs));
    }
    Ok(secs as i64 * 1_000_000_000 + nanos as i64)
}

fn put_timestamp(out: &mut [u8], ns: i64) {
    let ns = ns.max(0);
    let secs = (ns / 1_000_000_000) as u64;
    let nanos = (ns % 1_000_000_000) as u32;
    out[..6].copy_from_slice(&secs.to_be_bytes()[2..]);
    out[6..10].copy_from_slice(&nanos.to_be_bytes());
}

impl Message {
    /// Parse one datagram.
    pub fn parse(b: &[u8]) -> Result<Message, ParseError> {
        if b.len() < HEADER_LEN {
            return Err(ParseError::Short(b.len(), HEADER_LEN));
        }
        let kind = b[0] & 0x0f;
        let version = b[1] & 0x0f;
        if version != 2 {
            return Err(ParseError::Version(version));
        }
        let len = u16_at(b, 2) as usize;
        if len > b.len() {
            return Err(ParseError::Length(len, b.len()));
        }
        let need = match kind {
            SYNC | DELAY_REQ | FOLLOW_UP => HEADER_LEN + TIMESTAMP_LEN,
            DELAY_RESP => HEADER_LEN + TIMESTAMP_LEN + 10,
            ANNOUNCE => HEADER_LEN + 30,
            other => return Err(ParseError::Unhandled(other)),
        };
        if len < need {
            return Err(ParseError::Short(len, need));
        }
        let correction = i64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
        let header = Header {
            domain: b[4],
            two_step: b[6] & 0x02 != 0,
            correction_ns: correction >> 16,
            source: identity_at(b, 20),
            sequence: u16_at(b, 30),
            log_interval: b[33] as i8,
        };
        let t = HEADER_LEN;
        let body = match kind {
            SYNC => Body::Sync {
                origin_ns: timestamp_at(b, t)?,
            },
            DELAY_REQ => Body::DelayReq {
                origin_ns: timestamp_at(b, t)?,
            },
            FOLLOW_UP => Body::FollowUp {
                precise_origin_ns: timestamp_at(b, t)?,
            },
            DELAY_RESP => Body::DelayResp {
                receive_ns: timestamp_at(b, t)?,
                requesting: identity_at(b, t + 10),
            },
            _ => {
                // originTimestamp (10) is not used; it may legitimately be zero.
                let a = t + 10;
                Body::Announce(Announce {
                    utc_offset: u16_at(b, a) as i16,
                    priority1: b[a + 3],
                    clock_class: b[a + 4],
                    clock_accuracy: b[a + 5],
                    variance: u16_at(b, a + 6),
                    priority2: b[a + 8],
                    grandmaster: b[a + 9..a + 17].try_into().expect("8 bytes"),
                    steps_removed: u16_at(b, a + 17),
                    time_source: b[a + 19],
                    ptp_timescale: b[7] & 0x08 != 0,
                })
            }
        };
        Ok(Message { header, body })
    }

    /// Serialise (used for Delay_Req, and by tests to make every kind of packet).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (kind, control, len) = match &self.body {
            Body::Sync { .. } => (SYNC, 0, 44),
            Body::DelayReq { .. } => (DELAY_REQ, 1, 44),
            Body::FollowUp { .. } => (FOLLOW_UP, 2, 44),
            Body::DelayResp { .. } => (DELAY_RESP, 3, 54),
            Body::Announce(_) => (ANNOUNCE, 5, 64),
        };
        let mut b = vec![0u8; len];
        let h = &self.header;
        b[0] = kind;
        b[1] = 2;
        b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        b[4] = h.domain;
        b[6] = if h.two_step { 0x02 } else { 0 };
        b[8..16].copy_from_slice(&(h.correction_ns.saturating_mul(1 << 16)).to_be_bytes());
        b[20..28].copy_from_slice(&h.source.clock);
        b[28..30].copy_from_slice(&h.source.port.to_be_bytes());
        b[30..32].copy_from_slice(&h.sequence.to_be_bytes());
        b[32] = control;
        b[33] = h.log_interval as u8;
        let t = HEADER_LEN;
        match &self.body {
            Body::Sync { origin_ns } | Body::DelayReq { origin_ns } => {
                put_timestamp(&mut b[t..], *origin_ns)
            }
            Body::FollowUp { precise_origin_ns } => put_timestamp(&mut b[t..], *precise_origin_ns),
            Body::DelayResp {
                receive_ns,
                requesting,
            } => {
                put_timestamp(&mut b[t..], *receive_ns);
                b[t + 10..t + 18].copy_from_slice(&requesting.clock);
                b[t + 18..t + 20].copy_from_slice(&requesting.port.to_be_bytes());
            }
            Body::Announce(a) => {
                if a.ptp_timescale {
                    b[7] |= 0x08;
                }
                let a0 = t + 10;
                b[a0..a0 + 2].copy_from_slice(&a.utc_offset.to_be_bytes());
                b[a0 + 3] = a.priority1;
                b[a0 + 4] = a.clock_class;
                b[a0 + 5] = a.clock_accuracy;
                b[a0 + 6..a0 + 8].copy_from_slice(&a.variance.to_be_bytes());
                b[a0 + 8] = a.priority2;
                b[a0 + 9..a0 + 17].copy_from_slice(&a.grandmaster);
                b[a0 + 17..a0 + 19].copy_from_slice(&a.steps_removed.to_be_bytes());
                b[a0 + 19] = a.time_source;
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(seq: u16) -> Header {
        Header {
            domain: 0,
            two_step: true,
            correction_ns: 1234,
            source: PortIdentity {
                clock: [1, 2, 3, 0xff, 0xfe, 4, 5, 6],
                port: 1,
            },
            sequence: seq,
            log_interval: -3,
        }
    }

    fn all_kinds() -> Vec<Message> {
        let h = header(7);
        vec![
            Message {
                header: h,
                body: Body::Sync {
                    origin_ns: 1_700_000_000_123_456_789,
                },
            },
            Message {
                header: h,
                body: Body::DelayReq { origin_ns: 0 },
            },
            Message {
                header: h,
                body: Body::FollowUp {
                    precise_origin_ns: 42,
                },
            },
            Message {
                header: h,
                body: Body::DelayResp {
                    receive_ns: 5_000_000_001,
                    requesting: PortIdentity {
                        clock: [9; 8],
                        port: 3,
                    },
                },
            },
            Message {
                header: h,
                body: Body::Announce(Announce {
                    utc_offset: 37,
                    priority1: 128,
                    clock_class: 248,
                    clock_accuracy: 0xfe,
                    variance: 0xffff,
                    priority2: 128,
                    grandmaster: [1, 2, 3, 0xff, 0xfe, 4, 5, 6],
                    steps_removed: 0,
                    time_source: 0xa0,
                    ptp_timescale: true,
                }),
            },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for m in all_kinds() {
            let b = m.to_bytes();
            assert_eq!(Message::parse(&b).unwrap(), m);
        }
    }

    #[test]
    fn a_real_ptp4l_sync_parses() {
        // Laid out as ptp4l sends a two-step Sync: twoStepFlag set, originTimestamp zero.
        let b: [u8; 44] = [
            0x00, 0x02, 0x00, 0x2c, 0x00, 0x00, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55, 0x00, 0x01, 0x12, 0x34, 0x00, 0xfd, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let m = Message::parse(&b).unwrap();
        assert!(m.header.two_step);
        assert_eq!(m.header.sequence, 0x1234);
        assert_eq!(m.header.log_interval, -3);
        assert_eq!(m.body, Body::Sync { origin_ns: 0 });
    }

    #[test]
    fn malformed_packets_are_errors() {
        let good = all_kinds()[3].to_bytes();
        assert_eq!(Message::parse(&good[..20]), Err(ParseError::Short(20, 34)));
        assert_eq!(Message::parse(&good[..50]), Err(ParseError::Length(54, 50)));
        let mut v1 = good.clone();
        v1[1] = 1;
        assert_eq!(Message::parse(&v1), Err(ParseError::Version(1)));
        let mut short = good.clone();
        short[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(Message::parse(&short), Err(ParseError::Short(40, 54)));
        let mut nanos = good.clone();
        nanos[40..44].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(
            Message::parse(&nanos),
            Err(ParseError::Nanoseconds(1_000_000_000))
        );
        let mut secs = good.clone();
        secs[34..40].copy_from_slice(&[0xff; 6]);
        assert!(matches!(Message::parse(&secs), Err(ParseError::Seconds(_))));
        let mut mgmt = good;
        mgmt[0] = 0xd;
        assert_eq!(Message::parse(&mgmt), Err(ParseError::Unhandled(0xd)));
        // padding past messageLength is fine
        let mut padded = all_kinds()[0].to_bytes();
        padded.extend_from_slice(&[0xaa; 20]);
        assert!(Message::parse(&padded).is_ok());
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn mutated_valid_packets_never_panic(idx in 0usize..5, pos in 0usize..64, val in any::<u8>(), cut in 0usize..64) {
            let mut b = all_kinds()[idx].to_bytes();
            let p = pos % b.len();
            b[p] = val;
            b.truncate(b.len() - cut.min(b.len()));
            if let Ok(m) = Message::parse(&b) {
                // whatever parses, serialises again without panicking
                let _ = m.to_bytes();
            }
        }
    }
}
