//! An Endpoints object's subsets in canonical form: packed as upstream's
//! `RepackSubsets` packs them (one subset per set of addresses sharing the
//! same ports, an address not-ready on a port if any subset says so),
//! capped at 1000 addresses as the controller caps them, and compared as
//! upstream compares them (empty and absent alike, pod resourceVersions
//! ignored).
//!
//! Addresses are sorted as upstream sorts them (IP bytes, then target UID).
//! Upstream orders ports and subsets by an MD5 of Go's debug print of each;
//! here they are ordered by their content (port name, number, protocol;
//! then by addresses), which is as stable and as meaningless to clients.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset};

/// The most addresses one Endpoints object carries.
pub(super) const MAX_CAPACITY: usize = 1000;

/// A port's identity while packing (all of an EndpointPort's fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PortKey {
    name: String,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

impl PortKey {
    /// The stand-in for "no ports" (headless Services without ports).
    fn sentinel() -> Self {
        Self {
            name: String::new(),
            port: -1,
            protocol: String::new(),
            app_protocol: None,
        }
    }

    fn of(port: &EndpointPort) -> Self {
        Self {
            name: port.name.clone().unwrap_or_default(),
            port: port.port,
            protocol: port.protocol.clone().unwrap_or_default(),
            app_protocol: port.app_protocol.clone(),
        }
    }

    fn to_port(&self) -> EndpointPort {
        EndpointPort {
            name: non_empty(&self.name),
            port: self.port,
            protocol: non_empty(&self.protocol),
            app_protocol: self.app_protocol.clone(),
        }
    }
}

/// Expands `subsets` to (address, port, ready) and packs them again into the
/// canonical layout. Addresses are the same when IP and target UID are.
pub(super) fn repack(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut addresses: Vec<EndpointAddress> = Vec::new();
    let mut address_index: HashMap<(String, String), usize> = HashMap::new();
    // port → (address index → ready)
    let mut by_port: BTreeMap<PortKey, BTreeMap<usize, bool>> = BTreeMap::new();
    for subset in subsets {
        let ports: Vec<PortKey> = match subset.ports.as_deref() {
            Some(ports) if !ports.is_empty() => ports.iter().map(PortKey::of).collect(),
            _ => vec![PortKey::sentinel()],
        };
        let listed = subset.addresses.iter().flatten().map(|a| (a, true)).chain(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, false)),
        );
        for (address, ready) in listed {
            let key = (address.ip.clone(), target_uid(address).to_owned());
            let index = *address_index.entry(key).or_insert_with(|| {
                addresses.push(address.clone());
                addresses.len() - 1
            });
            for port in &ports {
                let states = by_port.entry(port.clone()).or_default();
                // Not ready wins over ready.
                let state = states.entry(index).or_insert(ready);
                *state = *state && ready;
            }
        }
    }
    // The same (address, ready) set → one subset with all its ports.
    let mut groups: BTreeMap<Vec<(usize, bool)>, Vec<PortKey>> = BTreeMap::new();
    for (port, states) in by_port {
        let key: Vec<(usize, bool)> = states.into_iter().collect();
        let ports = groups.entry(key).or_default();
        if port.port > 0 {
            ports.push(port);
        }
    }
    let mut packed: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(members, ports)| {
            let pick = |want: bool| -> Option<Vec<EndpointAddress>> {
                let mut list: Vec<EndpointAddress> = members
                    .iter()
                    .filter(|(_, ready)| *ready == want)
                    .map(|(i, _)| addresses[*i].clone())
                    .collect();
                list.sort_by(compare_addresses);
                (!list.is_empty()).then_some(list)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then(|| ports.iter().map(PortKey::to_port).collect()),
            }
        })
        .collect();
    packed.sort_by(compare_subsets);
    packed
}

/// Upstream's `LessEndpointAddress`: IP bytes, then target UID (an address
/// without a target first).
fn compare_addresses(a: &EndpointAddress, b: &EndpointAddress) -> Ordering {
    a.ip.as_bytes().cmp(b.ip.as_bytes()).then_with(|| {
        match (a.target_ref.as_ref(), b.target_ref.as_ref()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.uid.cmp(&y.uid),
        }
    })
}

fn compare_subsets(a: &EndpointSubset, b: &EndpointSubset) -> Ordering {
    let ips = |list: &Option<Vec<EndpointAddress>>| -> Vec<String> {
        list.iter().flatten().map(|a| a.ip.clone()).collect()
    };
    let ports = |s: &EndpointSubset| -> Vec<PortKey> {
        s.ports.iter().flatten().map(PortKey::of).collect()
    };
    ips(&a.addresses)
        .cmp(&ips(&b.addresses))
        .then_with(|| ips(&a.not_ready_addresses).cmp(&ips(&b.not_ready_addresses)))
        .then_with(|| ports(a).cmp(&ports(b)))
}

fn target_uid(address: &EndpointAddress) -> &str {
    address
        .target_ref
        .as_ref()
        .and_then(|t| t.uid.as_deref())
        .unwrap_or_default()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Caps the subsets at [`MAX_CAPACITY`] addresses as upstream's
/// `truncateEndpoints` does: ready addresses first, each subset keeping its
/// share (rounded up). Returns whether anything was cut.
pub(super) fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |list: &Option<Vec<EndpointAddress>>| list.as_ref().map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            count(&subset.addresses)
        } else {
            count(&subset.not_ready_addresses)
        };
        let share = (in_subset * max).div_ceil(total).min(can_be_added);
        if truncate_ready {
            if let Some(list) = subset.addresses.as_mut() {
                list.truncate(share);
            }
            subset.not_ready_addresses = None;
            can_be_added -= count(&subset.addresses);
        } else {
            if let Some(list) = subset.not_ready_addresses.as_mut() {
                list.truncate(share);
            }
            can_be_added -= count(&subset.not_ready_addresses);
        }
    }
    true
}

/// The subsets as upstream compares them: empty lists and strings as
/// absent, pod resourceVersions ignored.
pub(super) fn normalized(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let address = |a: &EndpointAddress| -> EndpointAddress {
        let mut a = a.clone();
        a.hostname = a.hostname.filter(|h| !h.is_empty());
        if let Some(target) = a.target_ref.as_mut() {
            target.resource_version = None;
        }
        a
    };
    let list = |l: &Option<Vec<EndpointAddress>>| -> Option<Vec<EndpointAddress>> {
        l.as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| l.iter().map(address).collect())
    };
    subsets
        .iter()
        .map(|s| EndpointSubset {
            addresses: list(&s.addresses),
            not_ready_addresses: list(&s.not_ready_addresses),
            ports: s.ports.as_ref().filter(|p| !p.is_empty()).map(|ports| {
                ports
                    .iter()
                    .map(|p| EndpointPort {
                        name: p.name.clone().filter(|n| !n.is_empty()),
                        ..p.clone()
                    })
                    .collect()
            }),
        })
        .collect()
}

/// Upstream's `capacityAnnotationSetCorrectly`: the over-capacity annotation
/// is there exactly when the stored subsets were cut to the cap.
pub(super) fn capacity_annotation_correct(annotated: bool, subsets: &[EndpointSubset]) -> bool {
    let count: usize = subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    if count > MAX_CAPACITY {
        return false;
    }
    (annotated && count == MAX_CAPACITY) || (!annotated && count < MAX_CAPACITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn addr(ip: &str, uid: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            node_name: Some("node-a".into()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                uid: Some(uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn port(name: &str, number: i32) -> EndpointPort {
        EndpointPort {
            name: non_empty(name),
            port: number,
            protocol: Some("TCP".into()),
            app_protocol: None,
        }
    }

    fn subset(
        ready: &[EndpointAddress],
        not_ready: &[EndpointAddress],
        ports: &[EndpointPort],
    ) -> EndpointSubset {
        EndpointSubset {
            addresses: (!ready.is_empty()).then(|| ready.to_vec()),
            not_ready_addresses: (!not_ready.is_empty()).then(|| not_ready.to_vec()),
            ports: (!ports.is_empty()).then(|| ports.to_vec()),
        }
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn one_subset_per_pod_and_port_packs_into_one() {
        let input = vec![
            subset(&[addr("10.42.0.9", "b")], &[], &[port("http", 8080)]),
            subset(&[addr("10.42.0.10", "c")], &[], &[port("http", 8080)]),
            subset(&[], &[addr("10.42.0.2", "a")], &[port("http", 8080)]),
        ];
        let packed = repack(&input);
        assert_eq!(packed.len(), 1);
        // IPs sort as bytes, as upstream sorts them: "10.42.0.10" < "10.42.0.9".
        assert_eq!(ips(&packed[0].addresses), vec!["10.42.0.10", "10.42.0.9"]);
        assert_eq!(ips(&packed[0].not_ready_addresses), vec!["10.42.0.2"]);
        assert_eq!(packed[0].ports, Some(vec![port("http", 8080)]));
    }

    #[test]
    fn addresses_sharing_all_ports_share_a_subset() {
        let a = addr("10.42.0.1", "a");
        let b = addr("10.42.0.2", "b");
        let input = vec![
            subset(std::slice::from_ref(&a), &[], &[port("http", 80)]),
            subset(std::slice::from_ref(&a), &[], &[port("metrics", 9090)]),
            subset(std::slice::from_ref(&b), &[], &[port("http", 80)]),
        ];
        let packed = repack(&input);
        assert_eq!(packed.len(), 2);
        let both = packed
            .iter()
            .find(|s| s.addresses.as_ref().unwrap().len() == 2)
            .unwrap();
        assert_eq!(both.ports, Some(vec![port("http", 80)]));
        let only_a = packed
            .iter()
            .find(|s| s.addresses.as_ref().unwrap().len() == 1)
            .unwrap();
        assert_eq!(ips(&only_a.addresses), vec!["10.42.0.1"]);
        assert_eq!(only_a.ports, Some(vec![port("metrics", 9090)]));
    }

    #[test]
    fn not_ready_on_a_port_wins_over_ready() {
        let a = addr("10.42.0.1", "a");
        let input = vec![
            subset(std::slice::from_ref(&a), &[], &[port("http", 80)]),
            subset(&[], std::slice::from_ref(&a), &[port("http", 80)]),
        ];
        let packed = repack(&input);
        assert_eq!(packed.len(), 1);
        assert!(packed[0].addresses.is_none());
        assert_eq!(ips(&packed[0].not_ready_addresses), vec!["10.42.0.1"]);
    }

    #[test]
    fn headless_without_ports_keeps_addresses_without_ports() {
        let input = vec![
            subset(&[addr("10.42.0.2", "b")], &[], &[]),
            subset(&[addr("10.42.0.1", "a")], &[], &[]),
        ];
        let packed = repack(&input);
        assert_eq!(packed.len(), 1);
        assert!(packed[0].ports.is_none());
        assert_eq!(ips(&packed[0].addresses), vec!["10.42.0.1", "10.42.0.2"]);
    }

    #[test]
    fn same_ip_different_pods_stay_apart_and_sort_by_uid() {
        let input = vec![subset(
            &[addr("10.42.0.1", "z"), addr("10.42.0.1", "a")],
            &[],
            &[port("", 80)],
        )];
        let packed = repack(&input);
        let uids: Vec<_> = packed[0]
            .addresses
            .iter()
            .flatten()
            .map(|a| a.target_ref.as_ref().unwrap().uid.clone().unwrap())
            .collect();
        assert_eq!(uids, vec!["a", "z"]);
    }

    #[test]
    fn repacking_is_idempotent_and_order_independent() {
        let a = addr("10.42.0.1", "a");
        let b = addr("10.42.0.2", "b");
        let one = vec![
            subset(
                std::slice::from_ref(&a),
                &[],
                &[port("http", 80), port("metrics", 9090)],
            ),
            subset(std::slice::from_ref(&b), &[], &[port("http", 80)]),
        ];
        let two = vec![
            subset(std::slice::from_ref(&b), &[], &[port("http", 80)]),
            subset(std::slice::from_ref(&a), &[], &[port("metrics", 9090)]),
            subset(std::slice::from_ref(&a), &[], &[port("http", 80)]),
        ];
        assert_eq!(repack(&one), repack(&two));
        assert_eq!(repack(&repack(&one)), repack(&one));
    }

    fn many(prefix: &str, n: usize) -> Vec<EndpointAddress> {
        (0..n)
            .map(|i| addr(&format!("{prefix}.{i}"), &format!("{prefix}-{i}")))
            .collect()
    }

    #[test]
    fn truncation_keeps_ready_first_and_proportions() {
        // 600 + 300 ready, 200 not ready: the not-ready ones are cut to 100
        // in proportion to where they are.
        let mut subsets = vec![
            subset(&many("1", 600), &many("3", 150), &[port("a", 1)]),
            subset(&many("2", 300), &many("4", 50), &[port("b", 2)]),
        ];
        assert!(truncate(&mut subsets));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 600);
        assert_eq!(subsets[1].addresses.as_ref().unwrap().len(), 300);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 75);
        assert_eq!(subsets[1].not_ready_addresses.as_ref().unwrap().len(), 25);
    }

    #[test]
    fn truncation_of_ready_drops_every_not_ready() {
        let mut subsets = vec![
            subset(&many("1", 700), &many("3", 10), &[port("a", 1)]),
            subset(&many("2", 701), &[], &[port("b", 2)]),
        ];
        assert!(truncate(&mut subsets));
        let ready: usize = subsets
            .iter()
            .map(|s| s.addresses.as_ref().unwrap().len())
            .sum();
        assert_eq!(ready, MAX_CAPACITY);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 500);
        assert!(subsets.iter().all(|s| s.not_ready_addresses.is_none()));
        let mut small = vec![subset(&many("1", 10), &[], &[port("a", 1)])];
        assert!(!truncate(&mut small));
    }

    #[test]
    fn capacity_annotation_must_match_the_count() {
        let full = vec![subset(&many("1", MAX_CAPACITY), &[], &[port("a", 1)])];
        let small = vec![subset(&many("1", 3), &[], &[port("a", 1)])];
        assert!(capacity_annotation_correct(true, &full));
        assert!(!capacity_annotation_correct(false, &full));
        assert!(capacity_annotation_correct(false, &small));
        assert!(!capacity_annotation_correct(true, &small));
    }

    #[test]
    fn comparison_ignores_empty_lists_and_pod_versions() {
        let mut with_rv = addr("10.42.0.1", "a");
        with_rv.target_ref.as_mut().unwrap().resource_version = Some("12".into());
        let stored = vec![EndpointSubset {
            addresses: Some(vec![with_rv]),
            not_ready_addresses: Some(vec![]),
            ports: Some(vec![EndpointPort {
                name: Some(String::new()),
                ..port("", 80)
            }]),
        }];
        let desired = vec![subset(&[addr("10.42.0.1", "a")], &[], &[port("", 80)])];
        assert_eq!(normalized(&stored), normalized(&desired));
    }
}
