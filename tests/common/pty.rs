//! The shell on a pseudo-terminal (rexpect), as an operator types at it.

use rexpect::session::PtySession;

/// How long any expected text may take to appear.
pub const TIMEOUT_MS: u64 = 20_000;

/// Types keys without Enter (rexpect buffers `send` until flushed).
pub fn type_keys(p: &mut PtySession, keys: &str) {
    p.send(keys).expect("send keys");
    p.flush().expect("flush keys");
}
