//! The bridge network's bookkeeping over fake kernel seams (no root): what
//! it asks of links and nftables, and that failures leak nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nftables::schema::{FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule, Set};

use crate::network::links::{BridgeSpec, NodeLinks, VethSpec};
use crate::network::nft::{self, HOSTPORTS_CHAIN, NftRunner, POD_CIDRS_SET};
use crate::network::{
    BridgeConfig, BridgeNetwork, FakeNetwork, InterfaceStats, NetworkError, PodAttachment,
    PodNetwork, PortMapping, Protocol,
};

#[derive(Debug, Default)]
struct LinksState {
    bridges: Vec<BridgeSpec>,
    attached: BTreeMap<String, VethSpec>,
    detached: Vec<String>,
    fail_bridge: bool,
    fail_attach: bool,
}

#[derive(Debug, Clone, Default)]
struct FakeLinks(Arc<Mutex<LinksState>>);

impl FakeLinks {
    fn state(&self) -> std::sync::MutexGuard<'_, LinksState> {
        self.0.lock().unwrap()
    }
}

fn refused(what: &str) -> NetworkError {
    NetworkError::InterfaceNotFound {
        interface: what.into(),
        netns: "fake".into(),
    }
}

impl NodeLinks for FakeLinks {
    fn ensure_bridge(&self, bridge: &BridgeSpec) -> Result<(), NetworkError> {
        let mut state = self.state();
        if state.fail_bridge {
            return Err(refused("skiff0"));
        }
        state.bridges.push(bridge.clone());
        Ok(())
    }

    fn attach(&self, veth: &VethSpec) -> Result<(), NetworkError> {
        let mut state = self.state();
        if state.fail_attach {
            return Err(refused("eth0"));
        }
        state.attached.insert(veth.host_name.clone(), veth.clone());
        Ok(())
    }

    fn detach(&self, host_name: &str) -> Result<(), NetworkError> {
        let mut state = self.state();
        state.attached.remove(host_name);
        state.detached.push(host_name.to_owned());
        Ok(())
    }

    fn exists(&self, name: &str) -> Result<bool, NetworkError> {
        Ok(self.state().bridges.iter().any(|b| b.name == name))
    }

    fn interface_stats(
        &self,
        _netns: &Path,
        interface: &str,
    ) -> Result<InterfaceStats, NetworkError> {
        Ok(InterfaceStats {
            name: interface.into(),
            rx_bytes: 7,
            ..InterfaceStats::default()
        })
    }
}

/// Keeps what a real table would: the hostports rules and the pod CIDRs.
#[derive(Debug, Default)]
struct NftState {
    batches: Vec<String>,
    hostports: Vec<Rule<'static>>,
    pod_cidrs: Option<Box<Set<'static>>>,
    next_handle: u32,
    fail_hostports: bool,
}

#[derive(Debug, Clone, Default)]
struct FakeNft(Arc<Mutex<NftState>>);

impl FakeNft {
    fn state(&self) -> std::sync::MutexGuard<'_, NftState> {
        self.0.lock().unwrap()
    }
}

impl NftRunner for FakeNft {
    fn apply(&self, commands: &Nftables<'_>, doing: &str) -> Result<(), NetworkError> {
        let mut state = self.state();
        let json = serde_json::to_string(commands).unwrap();
        if state.fail_hostports && json.contains(HOSTPORTS_CHAIN) && doing.contains("hostPort") {
            return Err(NetworkError::Nft {
                args: "-j -f -".into(),
                doing: doing.into(),
                stderr: "Error: fake refusal".into(),
            });
        }
        state.batches.push(json);
        for object in commands.objects.iter() {
            let NfObject::CmdObject(command) = object else {
                continue;
            };
            match command {
                NfCmd::Add(NfListObject::Rule(rule)) if rule.chain == HOSTPORTS_CHAIN => {
                    state.next_handle += 1;
                    let mut rule = rule.clone();
                    rule.handle = Some(state.next_handle);
                    state.hostports.push(
                        serde_json::from_value(serde_json::to_value(&rule).unwrap()).unwrap(),
                    );
                }
                NfCmd::Delete(NfListObject::Rule(rule)) => {
                    state.hostports.retain(|r| r.handle != rule.handle);
                }
                NfCmd::Flush(FlushObject::Set(set)) if set.name == POD_CIDRS_SET => {
                    state.pod_cidrs = None;
                }
                NfCmd::Add(NfListObject::Element(element)) if element.name == POD_CIDRS_SET => {
                    let set = Set {
                        name: POD_CIDRS_SET.into(),
                        elem: Some(element.elem.to_vec().into()),
                        ..Set::default()
                    };
                    state.pod_cidrs =
                        Some(serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn list(&self, what: &[&str]) -> Result<Option<Nftables<'static>>, NetworkError> {
        let state = self.state();
        let objects: Vec<NfObject<'static>> = match what.first() {
            Some(&"chain") => state
                .hostports
                .iter()
                .map(|rule| NfObject::ListObject(NfListObject::Rule(rule.clone())))
                .collect(),
            Some(&"set") => state
                .pod_cidrs
                .iter()
                .map(|set| NfObject::ListObject(NfListObject::Set(set.clone())))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Some(Nftables {
            objects: objects.into(),
        }))
    }
}

fn network(cidr: &str) -> (BridgeNetwork, FakeLinks, FakeNft, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let links = FakeLinks::default();
    let nft = FakeNft::default();
    let config = BridgeConfig {
        pod_cidr: Some(cidr.parse().unwrap()),
        ..BridgeConfig::new(dir.path())
    };
    let network =
        BridgeNetwork::with_backends(config, Box::new(links.clone()), Box::new(nft.clone()))
            .unwrap();
    (network, links, nft, dir)
}

fn pod(name: &str, port_mappings: Vec<PortMapping>) -> PodAttachment {
    PodAttachment {
        sandbox_id: format!("sandbox-{name}"),
        netns: format!("/run/skiff/pods/{name}/ns/net").into(),
        name: name.into(),
        namespace: "default".into(),
        port_mappings,
    }
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        protocol: Protocol::Tcp,
        container_port,
        host_port,
        host_ip: None,
    }
}

fn allocated(network: &BridgeNetwork) -> Vec<String> {
    let allocations = network.ipam().allocations().unwrap();
    allocations.iter().map(|a| a.ip.to_string()).collect()
}

#[test]
fn setup_and_teardown_ask_for_the_right_links_and_rules() {
    let (network, links, nft, _dir) = network("10.42.0.0/24");
    let web = pod("web", vec![tcp(8080, 80), tcp(0, 9090)]);
    let addresses = network.setup(&web).unwrap();
    assert_eq!(addresses.ip.to_string(), "10.42.0.2");
    assert_eq!(addresses.mac, "0a:58:0a:2a:00:02");

    let host = BridgeNetwork::host_interface("sandbox-web");
    assert_eq!(addresses.host_interface, host);
    let veth = links.state().attached[&host].clone();
    assert_eq!(veth.bridge, "skiff0");
    assert_eq!(veth.pod_interface, "eth0");
    assert_eq!(veth.ip.to_string(), "10.42.0.2");
    assert_eq!(veth.gateway.to_string(), "10.42.0.1");
    assert_eq!((veth.prefix_len, veth.mtu), (24, 1500));
    assert_eq!(links.state().bridges.len(), 1);

    let rules = nft.state().hostports.clone();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].comment.as_deref(), Some("sandbox-web tcp/*:8080"));
    let json = serde_json::to_string(&rules[0]).unwrap();
    assert!(
        json.contains(r#""dnat":{"addr":"10.42.0.2","family":"ip","port":80}"#),
        "{json}"
    );

    network.teardown(&web).unwrap();
    assert!(links.state().attached.is_empty());
    assert!(nft.state().hostports.is_empty());
    assert!(allocated(&network).is_empty());
    network.teardown(&web).unwrap();

    assert_eq!(network.stats(Path::new("/x")).unwrap().rx_bytes, 7);
}

#[test]
fn the_node_is_prepared_once_per_cidr_and_keeps_old_cidrs() {
    let (network, links, nft, _dir) = network("10.42.0.0/24");
    network.setup(&pod("a", vec![])).unwrap();
    network.setup(&pod("b", vec![])).unwrap();
    assert_eq!(links.state().bridges.len(), 1);
    assert_eq!(nft.state().batches.len(), 1);

    network
        .set_pod_cidr("10.42.8.0/24".parse().unwrap())
        .unwrap();
    assert_eq!(nft.state().batches.len(), 2);
    let base = nft.state().batches[1].clone();
    assert!(
        base.contains(r#"{"prefix":{"addr":"10.42.0.0","len":24}}"#),
        "{base}"
    );
    assert!(
        base.contains(r#"{"prefix":{"addr":"10.42.8.0","len":24}}"#),
        "{base}"
    );
    let c = network.setup(&pod("c", vec![])).unwrap();
    assert_eq!(c.ip.to_string(), "10.42.8.2");
    assert_eq!(
        links.state().bridges.last().unwrap().gateway.to_string(),
        "10.42.8.1"
    );

    // An old pod set up again keeps its address, and its gateway is ensured.
    let a = network.setup(&pod("a", vec![])).unwrap();
    assert_eq!(a.ip.to_string(), "10.42.0.2");
    assert_eq!(
        links.state().bridges.last().unwrap().gateway.to_string(),
        "10.42.0.1"
    );
}

#[test]
fn a_failed_attach_leaks_no_address() {
    let (network, links, _nft, _dir) = network("10.42.0.0/24");
    links.state().fail_attach = true;
    let err = network.setup(&pod("a", vec![])).unwrap_err();
    assert!(
        matches!(err, NetworkError::InterfaceNotFound { .. }),
        "{err}"
    );
    assert!(allocated(&network).is_empty());
    assert_eq!(
        links.state().detached,
        [BridgeNetwork::host_interface("sandbox-a")]
    );
}

#[test]
fn failed_hostport_rules_undo_the_links_and_the_address() {
    let (network, links, nft, _dir) = network("10.42.0.0/24");
    nft.state().fail_hostports = true;
    let err = network.setup(&pod("a", vec![tcp(8080, 80)])).unwrap_err();
    assert!(err.to_string().contains("fake refusal"), "{err}");
    assert!(allocated(&network).is_empty());
    assert!(links.state().attached.is_empty());
}

#[test]
fn a_hostport_held_by_another_pod_is_refused_but_setup_again_replaces_its_own() {
    let (network, _links, nft, _dir) = network("10.42.0.0/24");
    network.setup(&pod("a", vec![tcp(8080, 80)])).unwrap();
    let err = network.setup(&pod("b", vec![tcp(8080, 80)])).unwrap_err();
    assert!(
        err.to_string()
            .contains("hostPort tcp/*:8080 is already used by sandbox sandbox-a"),
        "{err}"
    );
    // Another protocol, or another host port, is fine.
    let mut udp = tcp(8080, 80);
    udp.protocol = Protocol::Udp;
    network.setup(&pod("c", vec![udp])).unwrap();
    // The owner may set up again with other ports: its rules are replaced.
    network.setup(&pod("a", vec![tcp(8081, 80)])).unwrap();
    let comments: Vec<String> = nft
        .state()
        .hostports
        .iter()
        .filter_map(|r| r.comment.as_deref().map(str::to_owned))
        .collect();
    assert_eq!(comments, ["sandbox-c udp/*:8080", "sandbox-a tcp/*:8081"]);
    assert_eq!(allocated(&network), ["10.42.0.2", "10.42.0.4"]);
}

#[test]
fn status_reports_the_cidr_and_failed_preparation() {
    let dir = tempfile::tempdir().unwrap();
    let links = FakeLinks::default();
    let network = BridgeNetwork::with_backends(
        BridgeConfig::new(dir.path()),
        Box::new(links.clone()),
        Box::new(FakeNft::default()),
    )
    .unwrap();
    assert_eq!(network.status().reason, "NoPodCIDR");
    assert!(matches!(
        network.setup(&pod("a", vec![])),
        Err(NetworkError::NoPodCidr)
    ));

    links.state().fail_bridge = true;
    assert!(
        network
            .set_pod_cidr("10.42.0.0/24".parse().unwrap())
            .is_err()
    );
    let status = network.status();
    assert!(!status.ready);
    assert_eq!(status.reason, "NetworkSetupFailed");
    assert!(status.message.contains("skiff0"), "{status:?}");

    links.state().fail_bridge = false;
    network.setup(&pod("a", vec![])).unwrap();
    assert!(network.status().ready);
}

#[test]
fn unusable_cidrs_and_mappings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for cidr in ["10.0.0.0/31", "fd00::/64"] {
        let config = BridgeConfig {
            pod_cidr: Some(cidr.parse().unwrap()),
            ..BridgeConfig::new(dir.path())
        };
        let err = BridgeNetwork::new(config).unwrap_err();
        assert!(matches!(err, NetworkError::InvalidPodCidr { .. }), "{err}");
    }

    let ip = "10.42.0.2".parse().unwrap();
    let mut v6 = tcp(8080, 80);
    v6.host_ip = Some("::1".parse().unwrap());
    let err = nft::hostport_forwards(ip, &[v6]).unwrap_err();
    assert!(err.to_string().contains("IPv6 host IPs"), "{err}");
    let err = nft::hostport_forwards(ip, &[tcp(8080, 80), tcp(8080, 81)]).unwrap_err();
    assert!(err.to_string().contains("same host port"), "{err}");
    let err = nft::hostport_forwards(ip, &[tcp(8080, 0)]).unwrap_err();
    assert!(err.to_string().contains("container port is 0"), "{err}");
    // Repeats merge; an unspecified host IP means all addresses.
    let mut any = tcp(8080, 80);
    any.host_ip = Some("0.0.0.0".parse().unwrap());
    let forwards = nft::hostport_forwards(ip, &[tcp(8080, 80), any]).unwrap();
    assert_eq!(forwards.len(), 1);
    assert_eq!(forwards[0].key.host_ip, None);
}

#[test]
fn names_fit_the_kernel_and_nft_limits() {
    let host = BridgeNetwork::host_interface(&"f".repeat(64));
    assert_eq!(host.len(), 15);
    assert!(host.starts_with("veth"));
    assert_eq!(host, BridgeNetwork::host_interface(&"f".repeat(64)));
    assert_ne!(host, BridgeNetwork::host_interface(&"e".repeat(64)));

    let id = "0123456789abcdef".repeat(4);
    assert_eq!(nft::owner_tag(&id), id);
    let odd = nft::owner_tag("a sandbox \"with\" quotes");
    assert!(odd.starts_with("sha256-") && odd.len() == 64, "{odd}");
    assert_eq!(nft::owner_tag(&"x".repeat(65)).len(), 64);
}

#[test]
fn the_base_ruleset_masquerades_only_when_asked() {
    let table = nft::SkiffTable {
        name: "skiff".into(),
        bridge: "skiff0".into(),
        masquerade: true,
        no_masquerade: vec!["10.42.0.0/16".parse().unwrap()],
    };
    let cidrs = ["10.42.0.0/24".parse().unwrap()];
    let json = serde_json::to_string(&table.base_ruleset(&cidrs)).unwrap();
    assert!(
        json.contains(r#"{"add":{"table":{"family":"inet","name":"skiff"}}}"#),
        "{json}"
    );
    assert!(
        json.contains(r#""hook":"prerouting","prio":-100"#),
        "{json}"
    );
    assert!(
        json.contains(r#"{"prefix":{"addr":"10.42.0.0","len":16}}"#),
        "{json}"
    );
    assert!(
        json.contains(r#"{"prefix":{"addr":"224.0.0.0","len":4}}"#),
        "{json}"
    );
    assert_eq!(json.matches(r#""masquerade":null"#).count(), 3);
    // The hostports chain is created but never flushed.
    assert!(
        !json.contains(
            r#"{"flush":{"chain":{"family":"inet","table":"skiff","name":"hostports"}}}"#
        )
    );

    let quiet = nft::SkiffTable {
        masquerade: false,
        ..table
    };
    let json = serde_json::to_string(&quiet.base_ruleset(&cidrs)).unwrap();
    // Hairpin and localhost hostPorts still need their masquerade.
    assert_eq!(json.matches(r#""masquerade":null"#).count(), 2);
}

#[test]
fn the_fake_network_hands_out_distinct_addresses() {
    let fake = FakeNetwork::new(Some("10.42.0.0/30".parse().unwrap()));
    let a = fake.setup(&pod("a", vec![])).unwrap();
    assert_eq!(a.ip.to_string(), "10.42.0.2");
    assert_eq!(fake.setup(&pod("a", vec![])).unwrap(), a);
    assert!(matches!(
        fake.setup(&pod("b", vec![])),
        Err(NetworkError::AddressesExhausted { .. })
    ));
    fake.teardown(&pod("a", vec![])).unwrap();
    assert!(fake.attached().is_empty());
    assert!(fake.status().ready);
}

#[test]
fn remove_deletes_the_table_and_the_bridge() {
    let (network, links, nft, _dir) = network("10.42.0.0/24");
    network.setup(&pod("a", Vec::new())).unwrap();
    network.teardown(&pod("a", Vec::new())).unwrap();
    network.remove().unwrap();
    let last = nft.state().batches.last().cloned().unwrap_or_default();
    assert!(
        last.contains("\"delete\"") && last.contains("\"table\"") && last.contains("\"skiff\""),
        "{last}"
    );
    assert_eq!(
        links.state().detached.last().map(String::as_str),
        Some("skiff0")
    );
}
