//! The transport's one error type: its kind is decided where the fault is found, and
//! the cause underneath is kept for `source()`.

use std::fmt;
use std::io;

use crate::error::ErrorKind;

/// Whether a failed request can be sent again without the server having acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Replay {
    /// The request never left: no connection could be made.
    NotSent,
    /// A reused keep-alive connection turned out closed before a byte of reply came:
    /// the server closed it as it went idle, most likely before it read the request.
    /// Safe to send again when the request is idempotent.
    StaleConnection,
    /// The server may have acted on the request.
    #[default]
    Unknown,
}

/// A failure the transport has already classified; the client reads the kind back.
#[derive(Debug)]
pub(crate) struct TransportError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) replay: Replay,
    /// The reply's status, when the fault came after its head.
    pub(crate) status: Option<u16>,
    pub(crate) source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
            replay: Replay::Unknown,
            status: None,
            source: None,
        }
    }

    /// Notes the status of the reply whose body this fault is in.
    pub(crate) fn at_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// No connection could be made, so the request never left.
    pub(crate) fn connect(message: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorKind::Connect, message);
        err.replay = Replay::NotSent;
        err
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// Keeps `cause` as this error's source.
    pub(crate) fn caused_by(
        mut self,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(cause));
        self
    }

    /// A socket error met while `doing` something, in words a user can act on.
    pub(crate) fn io(doing: &str, err: io::Error) -> Self {
        let message = match err.kind() {
            io::ErrorKind::ConnectionReset => format!("the server reset the connection {doing}"),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
                format!("the server closed the connection {doing}")
            }
            _ => format!("the connection failed {doing} ({err})"),
        };
        Self::protocol(message).caused_by(err)
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
