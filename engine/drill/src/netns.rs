//! A network of Linux network namespaces for the drill's partition faults: one namespace
//! per engine, each joined to this (root) namespace by a veth pair, the root routing
//! between them, and an nftables table in the root whose forward chain cuts links one
//! way or both. Needs root, `ip` (iproute2) and `nft` (nftables).
//!
//! Engine `i` gets `10.O.i.2/24` inside its namespace; the root side is `10.O.i.1`, the
//! namespace's default route. `O` is a second octet no address on this machine uses yet.
//! Everything is removed on drop, but for IPv4 forwarding in the root namespace, which
//! stays on (other groups may be using it). A process killed with SIGKILL leaves its
//! `fxd*` namespaces and `fixdrill*` nftables table behind (`ip netns del`, `nft delete
//! table inet …`). A firewall in the root namespace that drops forwarded packets (a
//! FORWARD policy of drop) keeps the engines apart from the start: the group then never
//! elects a standby that follows.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// The network could not be made or changed.
#[derive(Debug, thiserror::Error)]
#[error("network namespaces: `{command}` failed: {detail} (the partition faults need root, iproute2 and nftables: apt-get install iproute2 nftables)")]
pub struct NetnsError {
    /// The command.
    pub command: String,
    /// What it said.
    pub detail: String,
}

/// Serialises the choice of a free subnet within this process.
static SETUP: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

fn run(program: &str, args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetnsError {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The engines' namespaces and the links between them.
pub struct Network {
    id: String,
    octet: u8,
    count: usize,
}

impl Network {
    /// Makes `count` namespaces, each reachable from here and from the others.
    pub fn create(count: usize) -> Result<Self, NetnsError> {
        let _guard = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let used = run("ip", &["-o", "-4", "addr", "show"])?;
        let octet = (100u8..=250)
            .find(|o| !used.contains(&format!("inet 10.{o}.")))
            .ok_or_else(|| NetnsError {
                command: "choosing a subnet".into(),
                detail: "every 10.100-250.x.x subnet is in use".into(),
            })?;
        // Unique per process and call; short enough for 15-byte interface names.
        let id = format!(
            "{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed) % 1000
        );
        let net = Self {
            id,
            octet,
            count: 0,
        };
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| NetnsError {
            command: "echo 1 > /proc/sys/net/ipv4/ip_forward".into(),
            detail: e.to_string(),
        })?;
        let mut net = net;
        for i in 0..count {
            // Counted first, so that drop removes a half-made one too.
            net.count = i + 1;
            net.add(i)?;
        }
        let table = net.table();
        run("nft", &["add", "table", "inet", &table])?;
        run(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                &table,
                "cuts",
                "{ type filter hook forward priority -10; policy accept; }",
            ],
        )?;
        // Cuts between this (root) namespace, where the counterparty runs, and an engine.
        for (chain, hook) in [("from_root", "output"), ("to_root", "input")] {
            let spec = format!("{{ type filter hook {hook} priority -10; policy accept; }}");
            run("nft", &["add", "chain", "inet", &table, chain, &spec])?;
        }
        Ok(net)
    }

    fn add(&self, i: usize) -> Result<(), NetnsError> {
        let ns = self.namespace(i);
        let outer = format!("fxd{}r{i}", self.id);
        let inner = format!("fxd{}n{i}", self.id);
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
            ],
        )?;
        let o = self.octet;
        run(
            "ip",
            &["addr", "add", &format!("10.{o}.{i}.1/24"), "dev", &outer],
        )?;
        run("ip", &["link", "set", &outer, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.as_str(), "ip"];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["addr", "add", &format!("10.{o}.{i}.2/24"), "dev", &inner])?;
        inside(&["link", "set", &inner, "up"])?;
        inside(&["route", "add", "default", "via", &format!("10.{o}.{i}.1")])?;
        Ok(())
    }

    fn table(&self) -> String {
        format!("fixdrill{}", self.id)
    }

    /// The namespace engine `i` runs in (`ip netns exec NAME …`).
    pub fn namespace(&self, i: usize) -> String {
        format!("fxd{}-{i}", self.id)
    }

    /// Engine `i`'s address.
    pub fn host(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, i as u8, 2)
    }

    /// Drops every packet from engine `from` to engine `to` (one way: run it both ways
    /// for a partition).
    pub fn cut(&self, from: usize, to: usize) -> Result<(), NetnsError> {
        let rule = format!(
            "ip saddr {} ip daddr {} drop",
            self.host(from),
            self.host(to)
        );
        let mut args = vec!["add", "rule", "inet"];
        let table = self.table();
        args.push(&table);
        args.push("cuts");
        args.extend(rule.split(' '));
        run("nft", &args).map(|_| ())
    }

    /// Drops every packet between this (root) namespace and engine `i`, both ways: the
    /// counterparty (and the drill's probes) lose it, the other engines do not.
    pub fn cut_from_root(&self, i: usize) -> Result<(), NetnsError> {
        let table = self.table();
        let host = self.host(i).to_string();
        for (chain, dir) in [("from_root", "daddr"), ("to_root", "saddr")] {
            run(
                "nft",
                &[
                    "add", "rule", "inet", &table, chain, "ip", dir, &host, "drop",
                ],
            )?;
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<(), NetnsError> {
        for chain in ["cuts", "from_root", "to_root"] {
            run("nft", &["flush", "chain", "inet", &self.table(), chain])?;
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = run("nft", &["delete", "table", "inet", &self.table()]);
        for i in 0..self.count {
            let _ = run("ip", &["netns", "del", &self.namespace(i)]);
            let _ = run("ip", &["link", "del", &format!("fxd{}r{i}", self.id)]);
        }
    }
}
