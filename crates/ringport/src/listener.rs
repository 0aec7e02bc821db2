//! `Listener`: one listen address of a server and what may differ between listeners —
//! its handler, its codec, its admission limits and the name its statistics carry.

use crate::admission::AdmissionConfig;
use crate::codec::Codec;
use crate::error::Error;
use crate::handler::Handler;
use crate::routing::ListenerHandler;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// A listen address and its own settings, added with [`crate::ServerBuilder::listener`].
///
/// Unset settings follow the server's: its handler (the one given to `start`), its codec.
/// Admission limits set here apply to this listener's connections on top of the
/// server-wide ones (a connection must pass both; the listener's are checked first, so a
/// connection the server-wide limits then refuse has already spent the listener's rate
/// tokens). Names must differ between listeners (`start` fails otherwise). For example, a game server with a
/// length-prefixed protocol for players and a line protocol for operators on a second
/// port, each with its own limits:
///
/// ```no_run
/// # use ringport::{Codec, Conn, CloseReason, Handler, Listener, Server};
/// # use ringport::codec::{DelimitedCodec, Endian, LengthCodec};
/// # struct Game; struct Admin;
/// # impl Handler for Game { type Session = ();
/// #   fn on_open(&self, _: &mut Conn) {}
/// #   fn on_data(&self, _: &mut (), _: &mut Conn, _: &[u8]) {}
/// #   fn on_close(&self, _: (), _: &Conn, _: CloseReason) {} }
/// # impl Handler for Admin { type Session = String;
/// #   fn on_open(&self, _: &mut Conn) -> String { String::new() }
/// #   fn on_data(&self, _: &mut String, _: &mut Conn, _: &[u8]) {}
/// #   fn on_close(&self, _: String, _: &Conn, _: CloseReason) {} }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder()
///     .codec(Codec::Length(LengthCodec::new(4, Endian::Big)?))
///     .listener(Listener::bind("[::]:7000")?.name("players").max_per_ip(4))
///     .listener(
///         Listener::bind("127.0.0.1:7001")?
///             .name("admin")
///             .handler(Admin)
///             .codec(Codec::Delimited(DelimitedCodec::lines().max_length(4096)))
///             .max_connections(8),
///     )
///     .start(Game)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Listener {
    pub(crate) addr: SocketAddr,
    pub(crate) name: Option<String>,
    pub(crate) codec: Option<Codec>,
    pub(crate) admission: AdmissionConfig,
    pub(crate) handler: Option<ListenerHandler>,
}

impl Listener {
    /// A listener on `addr` (IPv4 or IPv6; port 0 picks a free port; a name resolving to
    /// several addresses listens on the first).
    pub fn bind<A: ToSocketAddrs + std::fmt::Debug>(addr: A) -> Result<Listener, Error> {
        let first = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| Error::NoAddress(format!("{addr:?}")))?;
        Ok(Listener::from(first))
    }

    /// The name this listener's statistics and metrics carry (default: its address).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Serve this listener's connections with `handler` instead of the server's.
    pub fn handler<H: Handler>(mut self, handler: H) -> Self {
        self.handler = Some(ListenerHandler(Arc::new(handler)));
        self
    }

    /// Frame this listener's connections with `codec` instead of the server's.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    crate::admission::admission_setters!(admission);
}

/// A listener's settings as the engine uses them (the handler stays with the server).
#[derive(Debug, Clone)]
pub(crate) struct ListenerSpec {
    pub addr: SocketAddr,
    pub name: Option<String>,
    pub codec: Option<Codec>,
    pub admission: AdmissionConfig,
}

impl Listener {
    /// Split into what the engine binds and the handler (if any).
    pub(crate) fn into_parts(self) -> (ListenerSpec, Option<ListenerHandler>) {
        (
            ListenerSpec {
                addr: self.addr,
                name: self.name,
                codec: self.codec,
                admission: self.admission,
            },
            self.handler,
        )
    }
}

/// A listener on `addr` with the server's settings.
impl From<SocketAddr> for Listener {
    fn from(addr: SocketAddr) -> Listener {
        Listener {
            addr,
            name: None,
            codec: None,
            admission: AdmissionConfig::default(),
            handler: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::IpNet;

    #[test]
    fn settings_are_kept_per_listener() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        let l = Listener::bind("127.0.0.1:0")
            .unwrap()
            .name("admin")
            .max_connections(3)
            .max_per_ip(1)
            .accept_rate(5.0, 2)
            .deny(net);
        assert_eq!(l.name.as_deref(), Some("admin"));
        assert_eq!(l.admission.max_connections, Some(3));
        assert_eq!(l.admission.max_per_ip, Some(1));
        assert_eq!(l.admission.accept_rate, Some((5.0, 2)));
        assert_eq!(l.admission.deny, vec![net]);
        assert!(l.handler.is_none() && l.codec.is_none());
    }
}
