//! Skiff's nftables table: masquerade and hostPorts.
//!
//! One table, `inet skiff` by default, belongs to Skiff alone:
//!
//! ```text
//! set pod_cidrs       every pod CIDR that still has pods (old ones stay after a change)
//! set no_masquerade   destinations reached with the pod's own address (cluster CIDR, multicast)
//! chain prerouting    nat, dstnat:  fib daddr type local jump hostports      (traffic from outside and from pods)
//! chain output        nat, -100:    fib daddr type local jump hostports      (the node's own traffic, 127.0.0.1 included)
//! chain hostports     one DNAT rule per hostPort, commented "<sandbox> <proto>/<hostIP|*>:<port>"
//! chain postrouting   nat, srcnat:
//!     ct status dnat ip saddr 127.0.0.0/8 oifname <bridge> masquerade    (hostPort reached on 127.0.0.1)
//!     ct status dnat ip saddr @pod_cidrs oifname <bridge> masquerade     (hairpin: a pod through a hostPort to a pod)
//!     ip saddr @pod_cidrs oifname != <bridge> ip daddr != @no_masquerade masquerade   (egress)
//! chain input         filter:  iifname <bridge> ip daddr 127.0.0.0/8 ct state new,invalid drop
//! ```
//!
//! DNAT to a pod of a connection made to 127.0.0.1 needs `route_localnet` on
//! the bridge (the kernel otherwise refuses to route a 127/8 source out of
//! it); the `input` rule keeps pods from using that to reach the node's
//! loopback-only services (the hole of CVE-2020-8558).
//!
//! The base part is rebuilt in one transaction at start and on a CIDR change
//! (chains flushed and refilled, sets refilled), which keeps it idempotent
//! across restarts; the `hostports` chain is left alone, so running pods keep
//! their forwarding. A pod's rules are found again by their comment and
//! deleted by handle on teardown.
//!
//! Commands go through [`NftRunner`]; [`NftBinary`] pipes the JSON that the
//! `nftables` crate's schema describes into `nft -j -f -`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix,
};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag,
    SetType, SetTypeValue, Table,
};
use nftables::stmt::{JumpTarget, Match, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use sha2::{Digest, Sha256};

use super::{NetworkError, PortMapping, Protocol};

/// The chain holding the per-pod DNAT rules.
pub const HOSTPORTS_CHAIN: &str = "hostports";
/// The set of pod CIDRs masqueraded on egress.
pub const POD_CIDRS_SET: &str = "pod_cidrs";
/// The set of destinations reached without masquerade.
pub const NO_MASQUERADE_SET: &str = "no_masquerade";

/// Runs nftables commands.
pub trait NftRunner: Send + Sync + fmt::Debug {
    /// Applies commands in one transaction; `doing` says what for, in errors.
    fn apply(&self, commands: &Nftables<'_>, doing: &str) -> Result<(), NetworkError>;

    /// Lists objects (`nft -j list <what…>`); `None` when they do not exist.
    fn list(&self, what: &[&str]) -> Result<Option<Nftables<'static>>, NetworkError>;
}

/// [`NftRunner`] over the `nft` binary's JSON interface.
#[derive(Debug, Clone)]
pub struct NftBinary {
    program: PathBuf,
}

impl Default for NftBinary {
    fn default() -> Self {
        NftBinary::new("nft")
    }
}

impl NftBinary {
    /// Uses `program` (a path, or a name looked up in `PATH`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        NftBinary {
            program: program.into(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Output, NetworkError> {
        let exec_error = |source| NetworkError::NftExec {
            program: self.program.display().to_string(),
            args: args.join(" "),
            source,
        };
        // The child inherits the calling thread's network namespace: the node's.
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(exec_error)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // nft reads all of its input before it writes anything.
            pipe.write_all(input).map_err(exec_error)?;
        }
        child.wait_with_output().map_err(exec_error)
    }
}

impl NftRunner for NftBinary {
    fn apply(&self, commands: &Nftables<'_>, doing: &str) -> Result<(), NetworkError> {
        let args = ["-j", "-f", "-"];
        let payload = serde_json::to_vec(commands).map_err(|source| NetworkError::NftOutput {
            args: args.join(" "),
            source,
        })?;
        let output = self.run(&args, Some(&payload))?;
        if output.status.success() {
            return Ok(());
        }
        tracing::debug!(payload = %String::from_utf8_lossy(&payload), "nft refused a batch");
        Err(NetworkError::Nft {
            args: args.join(" "),
            doing: doing.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    fn list(&self, what: &[&str]) -> Result<Option<Nftables<'static>>, NetworkError> {
        let args: Vec<&str> = ["-j", "list"].iter().chain(what).copied().collect();
        let output = self.run(&args, None)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(NetworkError::Nft {
                args: args.join(" "),
                doing: format!("listing {}", what.join(" ")),
                stderr,
            });
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|source| NetworkError::NftOutput {
                args: args.join(" "),
                source,
            })
    }
}

/// Skiff's table: its name and what its rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkiffTable {
    /// The table's name (family `inet`).
    pub name: String,
    /// The pod bridge.
    pub bridge: String,
    /// Whether pod traffic leaving the node is masqueraded.
    pub masquerade: bool,
    /// Destinations pods reach with their own address (e.g. the cluster CIDR).
    pub no_masquerade: Vec<Ipv4Net>,
}

/// What a hostPort rule forwards: the part two pods cannot share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostPortKey {
    /// The protocol.
    pub protocol: Protocol,
    /// The node address it is limited to (`None`: all of them).
    pub host_ip: Option<Ipv4Addr>,
    /// The node port.
    pub host_port: u16,
}

impl HostPortKey {
    /// Whether the two would catch the same packets.
    pub fn overlaps(&self, other: &HostPortKey) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }

    fn parse(text: &str) -> Option<HostPortKey> {
        let (protocol, rest) = text.split_once('/')?;
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return None,
        };
        let (host_ip, port) = rest.rsplit_once(':')?;
        let host_ip = match host_ip {
            "*" => None,
            ip => Some(ip.parse().ok()?),
        };
        Some(HostPortKey {
            protocol,
            host_ip,
            host_port: port.parse().ok()?,
        })
    }
}

impl fmt::Display for HostPortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(ip) => write!(f, "{}/{ip}:{}", self.protocol, self.host_port),
            None => write!(f, "{}/*:{}", self.protocol, self.host_port),
        }
    }
}

/// A hostPort rule found in the `hostports` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortRule {
    /// The rule's handle (to delete it).
    pub handle: Option<u32>,
    /// Its owner's tag ([`owner_tag`] of the sandbox ID).
    pub owner: String,
    /// What it forwards.
    pub key: HostPortKey,
}

/// The hostPort forwarding wanted for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortForward {
    /// What it catches.
    pub key: HostPortKey,
    /// The pod's address.
    pub pod_ip: Ipv4Addr,
    /// The port in the pod.
    pub container_port: u16,
}

/// How a sandbox is named in rule comments: its ID when short and plain (IDs
/// are 64 hex digits), otherwise a digest, so comments stay within nft's
/// 128-byte limit and free of quotes.
pub fn owner_tag(sandbox_id: &str) -> String {
    let plain = sandbox_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain && !sandbox_id.is_empty() && sandbox_id.len() <= 64 {
        return sandbox_id.to_owned();
    }
    let digest = Sha256::digest(sandbox_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256-{}", &hex[..57])
}

/// The forwards a pod's port mappings ask for: mappings without a host port
/// dropped, repeats merged, contradictions and IPv6 refused.
pub fn hostport_forwards(
    pod_ip: Ipv4Addr,
    mappings: &[PortMapping],
) -> Result<Vec<HostPortForward>, NetworkError> {
    let mut forwards: Vec<HostPortForward> = Vec::new();
    for mapping in mappings.iter().filter(|m| m.host_port != 0) {
        let invalid = |reason| NetworkError::InvalidPortMapping {
            mapping: mapping.to_string(),
            reason,
        };
        if mapping.container_port == 0 {
            return Err(invalid("the container port is 0"));
        }
        let host_ip = match mapping.host_ip.filter(|ip| !ip.is_unspecified()) {
            None => None,
            Some(IpAddr::V4(ip)) => Some(ip),
            Some(IpAddr::V6(_)) => return Err(invalid("IPv6 host IPs are not supported")),
        };
        let forward = HostPortForward {
            key: HostPortKey {
                protocol: mapping.protocol,
                host_ip,
                host_port: mapping.host_port,
            },
            pod_ip,
            container_port: mapping.container_port,
        };
        match forwards.iter().find(|f| f.key.overlaps(&forward.key)) {
            Some(existing) if *existing == forward => {}
            Some(_) => {
                return Err(invalid(
                    "another mapping of this pod uses the same host port",
                ));
            }
            None => forwards.push(forward),
        }
    }
    Ok(forwards)
}

impl SkiffTable {
    fn table(&self) -> Table<'static> {
        Table {
            family: NfFamily::INet,
            name: self.name.clone().into(),
            handle: None,
        }
    }

    fn chain(&self, name: &'static str) -> Chain<'static> {
        Chain {
            family: NfFamily::INet,
            table: self.name.clone().into(),
            name: name.into(),
            ..Chain::default()
        }
    }

    fn base_chain(
        &self,
        name: &'static str,
        kind: NfChainType,
        hook: NfHook,
        prio: i32,
    ) -> Chain<'static> {
        Chain {
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..self.chain(name)
        }
    }

    fn set(&self, name: &'static str) -> Set<'static> {
        Set {
            family: NfFamily::INet,
            table: self.name.clone().into(),
            name: name.into(),
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            flags: Some(HashSet::from([SetFlag::Interval])),
            ..Set::default()
        }
    }

    fn rule(&self, chain: &'static str, expr: Vec<Statement<'static>>) -> Rule<'static> {
        Rule {
            family: NfFamily::INet,
            table: self.name.clone().into(),
            chain: chain.into(),
            expr: expr.into(),
            ..Rule::default()
        }
    }

    fn fill_set(&self, batch: &mut Batch<'static>, name: &'static str, nets: &[Ipv4Net]) {
        batch.add_cmd(NfCmd::Flush(FlushObject::Set(Box::new(self.set(name)))));
        let nets = Ipv4Net::aggregate(&nets.to_vec());
        if nets.is_empty() {
            return;
        }
        batch.add(NfListObject::Element(Element {
            family: NfFamily::INet,
            table: self.name.clone().into(),
            name: name.into(),
            elem: nets.into_iter().map(prefix).collect::<Vec<_>>().into(),
        }));
    }

    /// The commands (re)building everything but the hostPort rules, for the
    /// given pod CIDRs (all of them: the set is refilled).
    pub fn base_ruleset(&self, pod_cidrs: &[Ipv4Net]) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(self.table()));
        for set in [POD_CIDRS_SET, NO_MASQUERADE_SET] {
            batch.add(NfListObject::Set(Box::new(self.set(set))));
        }
        batch.add(NfListObject::Chain(self.chain(HOSTPORTS_CHAIN)));
        let base_chains = [
            ("prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
            ("output", NfChainType::NAT, NfHook::Output, -100),
            ("postrouting", NfChainType::NAT, NfHook::Postrouting, 100),
            ("input", NfChainType::Filter, NfHook::Input, 0),
        ];
        for (name, kind, hook, prio) in base_chains {
            batch.add(NfListObject::Chain(self.base_chain(name, kind, hook, prio)));
            batch.add_cmd(NfCmd::Flush(FlushObject::Chain(self.chain(name))));
        }
        self.fill_set(&mut batch, POD_CIDRS_SET, pod_cidrs);
        let mut no_masquerade = self.no_masquerade.clone();
        no_masquerade.push(Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4));
        self.fill_set(&mut batch, NO_MASQUERADE_SET, &no_masquerade);

        let to_hostports = || {
            vec![
                matches(fib_daddr_type(), Operator::EQ, string("local")),
                Statement::Jump(JumpTarget {
                    target: HOSTPORTS_CHAIN.into(),
                }),
            ]
        };
        let loopback = || prefix(Ipv4Net::new_assert(Ipv4Addr::LOCALHOST, 8));
        let bridge = || string(&self.bridge);
        let mut rules = vec![
            self.rule("prerouting", to_hostports()),
            self.rule("output", to_hostports()),
            self.rule(
                "postrouting",
                vec![
                    matches(ct("status"), Operator::IN, string("dnat")),
                    matches(payload("ip", "saddr"), Operator::EQ, loopback()),
                    matches(meta(MetaKey::Oifname), Operator::EQ, bridge()),
                    Statement::Masquerade(None),
                ],
            ),
            self.rule(
                "postrouting",
                vec![
                    matches(ct("status"), Operator::IN, string("dnat")),
                    matches(payload("ip", "saddr"), Operator::EQ, set_ref(POD_CIDRS_SET)),
                    matches(meta(MetaKey::Oifname), Operator::EQ, bridge()),
                    Statement::Masquerade(None),
                ],
            ),
            self.rule(
                "input",
                vec![
                    matches(meta(MetaKey::Iifname), Operator::EQ, bridge()),
                    matches(payload("ip", "daddr"), Operator::EQ, loopback()),
                    matches(
                        ct("state"),
                        Operator::IN,
                        Expression::List(vec![string("invalid"), string("new")]),
                    ),
                    Statement::Drop(None),
                ],
            ),
        ];
        if self.masquerade {
            rules.push(self.rule(
                "postrouting",
                vec![
                    matches(payload("ip", "saddr"), Operator::EQ, set_ref(POD_CIDRS_SET)),
                    matches(meta(MetaKey::Oifname), Operator::NEQ, bridge()),
                    matches(
                        payload("ip", "daddr"),
                        Operator::NEQ,
                        set_ref(NO_MASQUERADE_SET),
                    ),
                    Statement::Masquerade(None),
                ],
            ));
        }
        for rule in rules {
            batch.add(NfListObject::Rule(rule));
        }
        batch.to_nftables()
    }

    /// The rules forwarding a pod's hostPorts, commented with their owner.
    pub fn hostport_rules(&self, owner: &str, forwards: &[HostPortForward]) -> Vec<Rule<'static>> {
        forwards
            .iter()
            .map(|forward| {
                let mut expr = Vec::new();
                if let Some(ip) = forward.key.host_ip {
                    expr.push(matches(
                        payload("ip", "daddr"),
                        Operator::EQ,
                        string(&ip.to_string()),
                    ));
                }
                expr.push(matches(
                    payload(forward.key.protocol.as_str(), "dport"),
                    Operator::EQ,
                    Expression::Number(u32::from(forward.key.host_port)),
                ));
                expr.push(Statement::DNAT(Some(NAT {
                    addr: Some(string(&forward.pod_ip.to_string())),
                    family: Some(NATFamily::IP),
                    port: Some(Expression::Number(u32::from(forward.container_port))),
                    flags: None,
                })));
                Rule {
                    comment: Some(format!("{owner} {}", forward.key).into()),
                    ..self.rule(HOSTPORTS_CHAIN, expr)
                }
            })
            .collect()
    }

    /// Commands deleting rules of the `hostports` chain by handle.
    pub fn delete_hostport_rules(&self, batch: &mut Batch<'static>, handles: &[u32]) {
        for handle in handles {
            batch.delete(NfListObject::Rule(Rule {
                handle: Some(*handle),
                ..self.rule(HOSTPORTS_CHAIN, Vec::new())
            }));
        }
    }

    /// The arguments listing the `hostports` chain.
    pub fn hostports_listing(&self) -> [&str; 4] {
        ["chain", "inet", &self.name, HOSTPORTS_CHAIN]
    }

    /// The arguments listing the whole table.
    pub fn table_listing(&self) -> [&str; 3] {
        ["table", "inet", &self.name]
    }

    /// Deletes the table with everything in it.
    pub fn delete(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add_cmd(NfCmd::Delete(NfListObject::Table(self.table())));
        batch.to_nftables()
    }

    /// The arguments listing the pod CIDR set.
    pub fn pod_cidrs_listing(&self) -> [&str; 4] {
        ["set", "inet", &self.name, POD_CIDRS_SET]
    }
}

/// The hostPort rules of a `hostports` chain listing (rules without a
/// comment of ours are skipped).
pub fn parse_hostport_rules(listing: &Nftables<'_>) -> Vec<HostPortRule> {
    listing
        .objects
        .iter()
        .filter_map(|object| match object {
            NfObject::ListObject(NfListObject::Rule(rule)) => Some(rule),
            _ => None,
        })
        .filter_map(|rule| {
            let (owner, key) = rule.comment.as_deref()?.split_once(' ')?;
            Some(HostPortRule {
                handle: rule.handle,
                owner: owner.to_owned(),
                key: HostPortKey::parse(key)?,
            })
        })
        .collect()
}

/// The prefixes of a set listing.
pub fn parse_set_prefixes(listing: &Nftables<'_>) -> Vec<Ipv4Net> {
    let mut nets = Vec::new();
    for object in listing.objects.iter() {
        let NfObject::ListObject(NfListObject::Set(set)) = object else {
            continue;
        };
        for element in set.elem.iter().flat_map(|elements| elements.iter()) {
            match element {
                Expression::Named(NamedExpression::Prefix(Prefix { addr, len })) => {
                    if let Expression::String(addr) = addr.as_ref()
                        && let Ok(addr) = addr.parse::<Ipv4Addr>()
                        && let Ok(net) = Ipv4Net::new(addr, *len as u8)
                    {
                        nets.push(net);
                    }
                }
                Expression::String(addr) => {
                    if let Ok(addr) = addr.parse::<Ipv4Addr>() {
                        nets.push(Ipv4Net::from(addr));
                    }
                }
                _ => {}
            }
        }
    }
    nets
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn string(value: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(value.to_owned()))
}

fn set_ref(name: &str) -> Expression<'static> {
    string(&format!("@{name}"))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(string(&net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

fn fib_daddr_type() -> Expression<'static> {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([FibFlag::Daddr]),
    }))
}
