//! The heartbeat's two signals and what each found: the SSH hello over the trusted
//! connection (both keys proven; the answer carries the peer's mode, epoch, version,
//! clock, status page and chain) and the peer's status page (`/status.json`). Each
//! outcome is a [`Signal`]: it answered, it did not, or a configuration error stood in
//! the way (not trusted, a wrong host key, our key refused, a page that is not the
//! peer's), which is never taken for a dead peer.

use std::time::Duration;

use russh::keys::PrivateKey;

use crate::ha::Settings;
use crate::ha::heartbeat::Signal;
use crate::host::{HostPort, StatusUrl};
use crate::http::client::{PageError, status};
use crate::node::Node;
use crate::peer::{Hello, Peer};

/// What the SSH hello found.
pub struct Heard {
    pub signal: Signal,
    /// The peer's hello, when it answered.
    pub hello: Option<Hello>,
    /// Its clock minus ours, in milliseconds.
    pub offset: Option<i64>,
}

/// This node's hello to a peer, with the chain it knows (so that its primary can tell
/// it is followed).
fn our_hello(node: &Node, settings: &Settings) -> Hello {
    let (upstream, downstream) = node.store.chain_links().unwrap_or_default();
    Hello { upstream, downstream, ..Hello::of(settings, &node.id) }
}

/// Trades hellos with `target` over the trusted connection, within `timeout`. The
/// trusted hosts are read at each probe: an operator may change them at any time.
pub async fn hello_of(
    node: &Node,
    key: &PrivateKey,
    target: &HostPort,
    settings: &Settings,
    timeout: Duration,
) -> Heard {
    let ours = our_hello(node, settings);
    let quiet = |signal| Heard { signal, hello: None, offset: None };
    match tokio::time::timeout(timeout, Peer::trusted_as(node, key, target, &ours)).await {
        Ok(Ok(peer)) => {
            let (hello, offset) = (peer.hello().clone(), peer.clock_offset_ms());
            peer.close().await;
            Heard { signal: Signal::Answered, hello: Some(hello), offset: Some(offset) }
        }
        Ok(Err(e)) if e.is_no_answer() => quiet(Signal::Down(e.to_string())),
        Ok(Err(e)) => quiet(Signal::Misconfigured(e.to_string())),
        Err(_) => quiet(Signal::Down(format!("no answer within {} ms", timeout.as_millis()))),
    }
}

/// Where a peer's status page is: the operator's `heartbeat status-url` when set, else
/// what the peer advertised.
pub fn page_url(settings: &Settings, advertised: Option<&str>) -> Option<StatusUrl> {
    settings.status_url.as_deref().or(advertised).and_then(|u| u.parse().ok())
}

/// The status page of a peer reached at `target` that advertised `hello`.
pub fn advertised(target: &HostPort, hello: &Hello) -> Option<StatusUrl> {
    hello.status_page.as_ref().map(|p| StatusUrl::at(&target.host, p.port, p.tls))
}

/// Asks the status page at `url` whether the node `expected` (when known) is a live
/// primary; `ours` is this node's id (a page that answers as this node is a mistake).
pub async fn page_of(
    url: Option<&StatusUrl>,
    pin: Option<&str>,
    expected: Option<&str>,
    ours: &str,
    timeout: Duration,
) -> Signal {
    let Some(url) = url else {
        return Signal::Misconfigured(
            "address unknown: the primary has not advertised its status page to this node (it never answered \
             a heartbeat); set 'heartbeat status-url'"
                .into(),
        );
    };
    match status(url, pin, timeout).await {
        Err(PageError::Down(why)) => Signal::Down(why),
        Err(PageError::Misconfigured(why)) => Signal::Misconfigured(why),
        Ok(page) if page.node_id == ours => {
            Signal::Misconfigured(format!("{url} is this node's own status page, not the primary's"))
        }
        Ok(page) if expected.is_some_and(|e| e != page.node_id) => Signal::Misconfigured(format!(
            "{url} answers as {} (node {}), not as the primary (node {})",
            page.hostname,
            page.node_id,
            expected.unwrap_or_default()
        )),
        Ok(page) if page.mode != "primary" => Signal::Down(format!("{url}: says mode {}", page.mode)),
        Ok(page) if !page.healthy => Signal::Down(format!("{url}: says it is not healthy")),
        Ok(_) => Signal::Answered,
    }
}
