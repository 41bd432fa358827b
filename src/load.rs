//! `coresh load`: a device check-in load driver for tests and benchmarks. Devices are
//! those of `coresh data generate` (their tokens follow from the seed). Requests are
//! scheduled open-loop at the given rate over keep-alive connections, and latency is
//! measured from each request's scheduled time, so a stalled server cannot hide its
//! queueing (no coordinated omission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::coredb::generate::token_for;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The node's HTTP address.
    pub target: SocketAddr,
    /// Check-ins per second; 0 sends as fast as the connections allow.
    pub rate: u64,
    /// How long to send.
    pub duration: Duration,
    /// Keep-alive connections.
    pub connections: usize,
    /// Generated devices to check in as (numbers 0..devices).
    pub devices: u64,
    /// Seed the data was generated with.
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs the load and reports.
pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    if options.devices == 0 || options.connections == 0 {
        bail!("--devices and --connections must be at least 1");
    }
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.connections {
        let (next, options) = (next.clone(), options.clone());
        tasks.push(tokio::spawn(async move { connection(options, next, start).await }));
    }
    let (mut latencies, mut failed) = (Vec::new(), 0u64);
    for task in tasks {
        let (lat, fail) = task.await.context("load task")??;
        latencies.extend(lat);
        failed += fail;
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let ok = latencies.len() as u64;
    Ok(LoadReport {
        sent: ok + failed,
        ok,
        failed,
        seconds,
        per_second: ok as f64 / seconds,
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
    })
}

/// One keep-alive connection taking request numbers until the time is up.
async fn connection(
    options: LoadOptions,
    next: Arc<AtomicU64>,
    start: Instant,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let stream = TcpStream::connect(options.target).await.with_context(|| format!("connect {}", options.target))?;
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let (mut latencies, mut failed) = (Vec::new(), 0u64);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let due =
            if options.rate == 0 { start.elapsed() } else { Duration::from_secs_f64(n as f64 / options.rate as f64) };
        if due >= options.duration {
            break;
        }
        let wait = due.saturating_sub(start.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let scheduled = start + due;
        let token = token_for(options.seed, n % options.devices);
        let body = format!("{{\"seq\":{n}}}");
        let request = format!(
            "POST /api/v1/devices/checkin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            options.target,
            body.len()
        );
        stream.get_mut().write_all(request.as_bytes()).await?;
        let status = read_response(&mut stream).await?;
        if status == 200 {
            latencies.push(scheduled.elapsed());
        } else {
            failed += 1;
        }
    }
    Ok((latencies, failed))
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
async fn read_response(stream: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("connection closed in the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().context("bad content-length")?;
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(status)
}
