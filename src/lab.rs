//! `coresh lab up` / `coresh lab down`: a Core pair (or a pair and a DR node) on this
//! machine, for newcomers and for trying things. Each node is a data directory under the
//! lab's directory and a daemon on loopback ports it chose; they are set up with the
//! commands an operator types (run as batch lines of this same binary): host names,
//! trust both ways, HA settings (continuous replication), a first sync. The primary holds generated data and
//! receives device check-ins (`coresh load`) while the lab is up. `lab.json` records what
//! runs, so `lab down` stops exactly that and removes the directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// File that marks a lab directory and lists what runs.
const MARKER: &str = "lab.json";
/// How long a daemon may take to start.
const START: Duration = Duration::from_secs(30);

/// One node of a lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabNode {
    pub name: String,
    /// `primary`, `secondary` or `dr`.
    pub role: String,
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub ssh: SocketAddr,
    pub pid: u32,
}

/// What `lab.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    pub nodes: Vec<LabNode>,
    /// The check-in generator.
    pub load_pid: Option<u32>,
}

/// Where a lab lives unless told otherwise.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("coresh-lab")
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the coresh binary")
}

/// Runs shell lines on a node in batch mode; fails with what the shell said.
fn shell(data_dir: &Path, lines: &[String]) -> anyhow::Result<String> {
    let mut cmd = Command::new(exe()?);
    cmd.arg("--data-dir").arg(data_dir).env_remove("CORESH_ENABLE_SECRET");
    for line in lines {
        cmd.arg("-c").arg(line);
    }
    let out = cmd.output().context("cannot run the coresh shell")?;
    if !out.status.success() {
        bail!("{} on {}: {}", lines.join(" / "), data_dir.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn config(data_dir: &Path, lines: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["enable".to_string(), "configure terminal".to_string()];
    all.extend(lines.iter().map(|l| l.to_string()));
    shell(data_dir, &all)
}

/// Starts `coresh serve` on loopback ports of its choosing, detached from this process;
/// returns its pid and addresses once it serves.
fn start_daemon(data_dir: &Path, log: &Path) -> anyhow::Result<(u32, SocketAddr, SocketAddr)> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let child = Command::new(exe()?)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--http-listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .process_group(0)
        .spawn()
        .context("cannot start coresh serve")?;
    let pid = child.id();
    let field = |line: &str, name: &str| -> Option<SocketAddr> {
        line.split(&format!(" {name}=")).nth(1)?.split_whitespace().next()?.parse().ok()
    };
    let deadline = Instant::now() + START;
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("coresh node serving"))
            && let (Some(http), Some(ssh)) = (field(line, "http"), field(line, "ssh"))
        {
            return Ok((pid, http, ssh));
        }
        if !alive(pid) {
            bail!("the daemon of {} stopped: {}", data_dir.display(), text.trim());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, libc::SIGKILL);
    bail!("the daemon of {} did not start within {} s", data_dir.display(), START.as_secs())
}

/// Whether `pid` runs (a zombie, gone but not reaped, does not).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

/// Whether `pid` is still the coresh process the lab started (its command line names
/// `needle`), not another that took its number since.
fn ours(pid: u32, needle: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    alive(pid) && cmdline.contains("coresh") && cmdline.contains(needle)
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a process this lab started; no memory is touched.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Starts a lab of `nodes` (2 or 3) in `dir`.
pub fn up(dir: &Path, nodes: u8) -> anyhow::Result<Lab> {
    if !(2..=3).contains(&nodes) {
        bail!("--nodes is 2 (a primary and a secondary) or 3 (and a DR node)");
    }
    if dir.join(MARKER).exists() {
        bail!("a lab is up in {} already: 'coresh lab down --dir {}' first", dir.display(), dir.display());
    }
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: give another --dir", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut lab = Lab { nodes: Vec::new(), load_pid: None };
    let built = build(dir, nodes, &mut lab);
    // Whatever started is recorded, so that 'lab down' can stop it even after a failure.
    let saved = std::fs::write(dir.join(MARKER), serde_json::to_vec_pretty(&lab)?);
    built?;
    saved.context("cannot write lab.json")?;
    Ok(lab)
}

fn build(dir: &Path, nodes: u8, lab: &mut Lab) -> anyhow::Result<()> {
    let roles = [("core-a", "primary"), ("core-b", "secondary"), ("core-dr", "dr")];
    for (name, role) in roles.iter().take(usize::from(nodes)) {
        let data_dir = dir.join(name);
        config(&data_dir, &[&format!("hostname {name}")])?;
        if *role == "primary" {
            let out = Command::new(exe()?)
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["data", "generate", "--devices", "1000", "--events", "10000"])
                .output()?;
            if !out.status.success() {
                bail!("data generate: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        let (pid, http, ssh) = start_daemon(&data_dir, &dir.join(format!("{name}.log")))?;
        lab.nodes.push(LabNode { name: name.to_string(), role: role.to_string(), data_dir, http, ssh, pid });
    }
    // Trust both ways, at the addresses the daemons listen on.
    let keys = lab
        .nodes
        .iter()
        .map(|n| {
            let json: serde_json::Value =
                serde_json::from_str(&shell(&n.data_dir, &["show ssh local-key | json".into()])?)?;
            Ok(json["public_key"].as_str().unwrap_or_default().to_string())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for node in &lab.nodes {
        let mut lines = vec!["high-availability".to_string()];
        for (other, key) in lab.nodes.iter().zip(&keys) {
            if other.name != node.name {
                lines.push(format!("trusted-host {} {key}", other.ssh));
            }
        }
        config(&node.data_dir, &lines.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    // The secondary follows the primary; the DR node follows the secondary (a cascade)
    // and never promotes itself. Each is synced first, then streams each change as it
    // commits (streaming from before the sync would start a second, racing full sync,
    // and the node downstream could copy the data it replaces); the schedule stays as a
    // second way.
    for (i, node) in lab.nodes.iter().enumerate().skip(1) {
        let upstream = lab.nodes[i - 1].ssh;
        let on_failure = if node.role == "dr" { "keep-standby" } else { "promote" };
        let lines = [
            "high-availability".to_string(),
            "mode secondary".into(),
            format!("primary-host {upstream}"),
            "heartbeat interval 5".into(),
            format!("on-failure {on_failure}"),
            // Scheduled syncs from the next minute on, every 5 minutes.
            format!("sync start-time {}", (chrono::Utc::now() + chrono::Duration::minutes(1)).format("%H:%M")),
            "sync run-every 5 minutes".into(),
        ];
        config(&node.data_dir, &lines.iter().map(String::as_str).collect::<Vec<_>>())?;
        shell(&node.data_dir, &["enable".into(), format!("failover sync {upstream}")])?;
        config(&node.data_dir, &["high-availability", "replication mode continuous", "service enable"])?;
    }
    // HA on the primary too, once the others are secondaries: a switchover can then make
    // it a standby.
    config(&lab.nodes[0].data_dir, &["high-availability", "service enable"])?;
    // Device traffic on the primary.
    use std::os::unix::process::CommandExt;
    let primary = &lab.nodes[0];
    let load = Command::new(exe()?)
        .args(["load", "--target", &primary.http.to_string(), "--rate", "20", "--seconds", "31536000"])
        .args(["--connections", "2", "--devices", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("load.log"))?)
        .process_group(0)
        .spawn()
        .context("cannot start the check-in load")?;
    lab.load_pid = Some(load.id());
    Ok(())
}

/// How to reach each node, as `lab up` prints it.
pub fn describe(lab: &Lab) -> String {
    let mut out = Vec::new();
    for n in &lab.nodes {
        out.push(format!("{} ({})", n.name, n.role));
        out.push(format!("  shell:       coresh --data-dir {}", n.data_dir.display()));
        out.push(format!("  status page: http://{}/hastatus.html", n.http));
        out.push(format!("  ssh:         {} (peers; add 'username NAME key KEY' for a console)", n.ssh));
    }
    if let Some(pid) = lab.load_pid {
        out.push(format!("Device check-ins: 20/s to {} (pid {pid})", lab.nodes[0].http));
    }
    out.join("\n")
}

/// Stops what the lab in `dir` runs and removes the directory.
pub fn down(dir: &Path) -> anyhow::Result<usize> {
    let marker = dir.join(MARKER);
    let text = std::fs::read(&marker)
        .with_context(|| format!("no lab in {} (no {MARKER}); nothing was touched", dir.display()))?;
    let lab: Lab = serde_json::from_slice(&text).context("lab.json is unreadable; nothing was touched")?;
    let mut pids: Vec<u32> = lab.load_pid.filter(|&p| ours(p, " load ")).into_iter().collect();
    pids.extend(lab.nodes.iter().filter(|n| ours(n.pid, &n.data_dir.display().to_string())).map(|n| n.pid));
    for &pid in &pids {
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in pids.iter().filter(|&&p| alive(p)) {
        signal(pid, libc::SIGKILL);
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(pids.len())
}
