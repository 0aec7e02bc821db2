//! What a watch waits for ([`Interest`]: readiness, trigger, persistence) and what a
//! notification says ([`Ready`]).

use std::fmt;
use std::ops::BitOr;

/// poll(2) bits, as the kernel reports them.
const POLLIN: u32 = libc::POLLIN as u16 as u32;
const POLLPRI: u32 = libc::POLLPRI as u16 as u32;
const POLLOUT: u32 = libc::POLLOUT as u16 as u32;
const POLLERR: u32 = libc::POLLERR as u16 as u32;
const POLLHUP: u32 = libc::POLLHUP as u16 as u32;
const POLLNVAL: u32 = libc::POLLNVAL as u16 as u32;
const POLLRDHUP: u32 = libc::POLLRDHUP as u16 as u32;

/// Interest bits (of [`Interest::events`]).
const READ: u8 = 1;
const WRITE: u8 = 2;
const HANGUP: u8 = 4;

/// When a watch reports readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Whenever the descriptor is ready: a persistent level watch reports again after
    /// each notification while the readiness lasts (data left unread is reported again),
    /// like `poll(2)` or epoll without `EPOLLET`.
    Level,
    /// When readiness arrives: once when the watch is armed if the descriptor is ready
    /// then, and after that once per new arrival (each write into a socket), not again
    /// while it merely lasts. Read until `WouldBlock` on each notification, or the next
    /// may never come. Like epoll's `EPOLLET`.
    Edge,
}

/// How long a watch stays armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persistence {
    /// Until removed.
    Persistent,
    /// For one notification; then disarmed (still registered) until re-armed or
    /// modified, which looks at the descriptor again, so readiness that is there at the
    /// re-arm is reported (as epoll's `EPOLLONESHOT` re-armed with `EPOLL_CTL_MOD`). With
    /// one-shot watches, several threads never handle one descriptor at once.
    OneShot,
}

/// What a watch waits for: readable, writable and/or hang-up (errors and full hang-ups
/// are always reported), with a [`Trigger`] and a [`Persistence`]. Default: level and
/// persistent, like `poll(2)`.
///
/// ```
/// use ringport::notify::{Interest, Persistence, Trigger};
/// let i = (Interest::READABLE | Interest::HANGUP).edge();
/// assert!(i.is_readable() && i.is_hangup() && !i.is_writable());
/// assert_eq!(i.trigger(), Trigger::Edge);
/// assert_eq!(Interest::WRITABLE.oneshot().persistence(), Persistence::OneShot);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest {
    events: u8,
    trigger: Trigger,
    persistence: Persistence,
}

impl Interest {
    /// Readable: data (or a connection to accept, or end of file) is there.
    pub const READABLE: Interest = Interest::of(READ);
    /// Writable: a write would not block.
    pub const WRITABLE: Interest = Interest::of(WRITE);
    /// The peer shut its write side (`POLLRDHUP`); a full hang-up (`POLLHUP`) is always
    /// reported, asked or not.
    pub const HANGUP: Interest = Interest::of(HANGUP);

    const fn of(events: u8) -> Interest {
        Interest {
            events,
            trigger: Trigger::Level,
            persistence: Persistence::Persistent,
        }
    }

    /// The same readiness, edge-triggered.
    pub const fn edge(self) -> Interest {
        Interest {
            trigger: Trigger::Edge,
            ..self
        }
    }

    /// The same readiness, level-triggered.
    pub const fn level(self) -> Interest {
        Interest {
            trigger: Trigger::Level,
            ..self
        }
    }

    /// The same readiness, one-shot.
    pub const fn oneshot(self) -> Interest {
        Interest {
            persistence: Persistence::OneShot,
            ..self
        }
    }

    /// The same readiness, persistent.
    pub const fn persistent(self) -> Interest {
        Interest {
            persistence: Persistence::Persistent,
            ..self
        }
    }

    /// Waits for readable.
    pub const fn is_readable(self) -> bool {
        self.events & READ != 0
    }

    /// Waits for writable.
    pub const fn is_writable(self) -> bool {
        self.events & WRITE != 0
    }

    /// Waits for the peer's hang-up.
    pub const fn is_hangup(self) -> bool {
        self.events & HANGUP != 0
    }

    /// Its trigger.
    pub const fn trigger(self) -> Trigger {
        self.trigger
    }

    /// Its persistence.
    pub const fn persistence(self) -> Persistence {
        self.persistence
    }

    /// The poll(2) bits to ask the kernel for.
    pub(crate) fn poll_events(self) -> u32 {
        let mut m = 0;
        if self.is_readable() {
            m |= POLLIN | POLLPRI;
        }
        if self.is_writable() {
            m |= POLLOUT;
        }
        if self.is_hangup() {
            m |= POLLRDHUP;
        }
        m
    }

    /// One multishot poll serves it (edge and persistent); else one-shot polls, re-armed
    /// by the table.
    pub(crate) fn multishot(self) -> bool {
        self.trigger == Trigger::Edge && self.persistence == Persistence::Persistent
    }
}

/// Readiness bits combine; the result is edge-triggered if either side is, one-shot if
/// either side is (the non-default choice wins, whatever the order).
impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest {
            events: self.events | other.events,
            trigger: if self.trigger == Trigger::Edge || other.trigger == Trigger::Edge {
                Trigger::Edge
            } else {
                Trigger::Level
            },
            persistence: if self.persistence == Persistence::OneShot
                || other.persistence == Persistence::OneShot
            {
                Persistence::OneShot
            } else {
                Persistence::Persistent
            },
        }
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interest({self})")
    }
}

/// For people: `readable|hangup, edge, one-shot`.
impl fmt::Display for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [(READ, "readable"), (WRITE, "writable"), (HANGUP, "hangup")];
        write_names(f, names.iter().filter(|(b, _)| self.events & b != 0))?;
        let trigger = match self.trigger {
            Trigger::Level => "level",
            Trigger::Edge => "edge",
        };
        let persistence = match self.persistence {
            Persistence::Persistent => "persistent",
            Persistence::OneShot => "one-shot",
        };
        write!(f, ", {trigger}, {persistence}")
    }
}

fn write_names<'a>(
    f: &mut fmt::Formatter<'_>,
    names: impl Iterator<Item = &'a (impl Copy + 'a, &'static str)>,
) -> fmt::Result {
    let mut any = false;
    for (_, name) in names {
        if any {
            f.write_str("|")?;
        }
        f.write_str(name)?;
        any = true;
    }
    if !any {
        f.write_str("nothing")?;
    }
    Ok(())
}

/// What a notification reports: the descriptor's readiness (poll(2) bits underneath:
/// what was asked and is ready, plus errors and hang-ups whatever was asked).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ready(u32);

impl Ready {
    pub(crate) fn from_poll(mask: u32) -> Ready {
        Ready(mask)
    }

    /// Readable (data, a connection to accept, end of file, urgent data).
    pub fn is_readable(self) -> bool {
        self.0 & (POLLIN | POLLPRI) != 0
    }

    /// Writable.
    pub fn is_writable(self) -> bool {
        self.0 & POLLOUT != 0
    }

    /// The peer shut its write side, or the connection is hung up.
    pub fn is_hangup(self) -> bool {
        self.0 & (POLLRDHUP | POLLHUP) != 0
    }

    /// An error is pending on the descriptor (read it with `SO_ERROR`, or from the next
    /// read or write).
    pub fn is_error(self) -> bool {
        self.0 & (POLLERR | POLLNVAL) != 0
    }

    /// The poll(2) bits (`POLLIN`, `POLLOUT`, ...).
    pub fn poll_bits(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ready({self})")
    }
}

/// For people: `readable|writable`.
impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_readable(), "readable"),
            (self.is_writable(), "writable"),
            (self.is_hangup(), "hangup"),
            (self.is_error(), "error"),
        ];
        write_names(f, names.iter().filter(|(on, _)| *on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combining_keeps_every_readiness_and_the_non_default_modes() {
        let i = Interest::READABLE.edge() | Interest::WRITABLE.oneshot();
        assert!(i.is_readable() && i.is_writable() && !i.is_hangup());
        assert_eq!(i.trigger(), Trigger::Edge);
        assert_eq!(i.persistence(), Persistence::OneShot);
        assert_eq!(
            (Interest::WRITABLE | Interest::READABLE.edge()).trigger(),
            Trigger::Edge
        );
        assert_eq!(i.to_string(), "readable|writable, edge, one-shot");
    }

    #[test]
    fn only_edge_persistent_is_one_multishot_poll() {
        let r = Interest::READABLE;
        assert!(r.edge().multishot());
        assert!(!r.multishot() && !r.edge().oneshot().multishot() && !r.oneshot().multishot());
    }

    #[test]
    fn poll_bits_follow_the_interest() {
        assert_eq!(Interest::READABLE.poll_events(), POLLIN | POLLPRI);
        assert_eq!(Interest::WRITABLE.poll_events(), POLLOUT);
        assert_eq!(Interest::HANGUP.poll_events(), POLLRDHUP);
    }

    #[test]
    fn ready_reads_the_kernels_bits() {
        let r = Ready::from_poll(POLLIN | POLLHUP);
        assert!(r.is_readable() && r.is_hangup() && !r.is_writable() && !r.is_error());
        assert_eq!(r.to_string(), "readable|hangup");
        assert_eq!(Ready::from_poll(0).to_string(), "nothing");
        assert!(Ready::from_poll(POLLNVAL).is_error());
    }
}
