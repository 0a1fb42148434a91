//! The bridge network against the kernel (needs root): each test in its own
//! node namespace, with real pod namespaces, links, routes and nft rules.

use std::net::IpAddr;

use super::fixture::{
    NODE_IP, OUTSIDE_IP, allocated, fetch, in_node_netns, link_exists, rules_of, run, skiff_table,
};
use crate::network::{
    BridgeNetwork, NetworkError, PodNetwork, PortMapping, Protocol, links::format_mac,
    links::mac_for,
};

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        protocol: Protocol::Tcp,
        container_port,
        host_port,
        host_ip: None,
    }
}

#[test]
fn setup_gives_the_pod_its_address_route_and_bridge() {
    in_node_netns(|node| {
        let network = node.network("10.42.0.0/24");
        let pod = node.pod("a", vec![]);
        let addresses = network.setup(&pod.attachment).unwrap();

        assert_eq!(addresses.ip, "10.42.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(addresses.gateway, "10.42.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(addresses.prefix_len, 24);
        assert_eq!(addresses.interface, "eth0");
        assert_eq!(addresses.mac, "0a:58:0a:2a:00:02");

        let eth0 = pod.pin.run(&["ip", "-o", "addr", "show", "dev", "eth0"]);
        assert!(eth0.contains("inet 10.42.0.2/24"), "{eth0}");
        let link = pod.pin.run(&["ip", "-o", "link", "show", "dev", "eth0"]);
        assert!(link.contains("mtu 1500") && link.contains(",UP"), "{link}");
        assert!(link.contains("link/ether 0a:58:0a:2a:00:02"), "{link}");
        let lo = pod.pin.run(&["ip", "-o", "link", "show", "dev", "lo"]);
        assert!(lo.contains(",UP"), "{lo}");
        let routes = pod.pin.run(&["ip", "route"]);
        assert!(
            routes.contains("default via 10.42.0.1 dev eth0"),
            "{routes}"
        );

        let bridge = run("ip", &["-o", "addr", "show", "dev", "skiff0"]);
        assert!(bridge.contains("inet 10.42.0.1/24"), "{bridge}");
        let bridge_link = run("ip", &["-o", "link", "show", "dev", "skiff0"]);
        assert!(bridge_link.contains(&format_mac(mac_for("10.42.0.1".parse().unwrap()))));
        let veth = run(
            "ip",
            &["-o", "link", "show", "dev", &addresses.host_interface],
        );
        assert!(
            veth.contains("master skiff0") && veth.contains(",UP"),
            "{veth}"
        );
        assert!(addresses.host_interface.len() <= 15);
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim(),
            "1"
        );

        // Setting up again gives the same address and rebuilt links.
        let again = network.setup(&pod.attachment).unwrap();
        assert_eq!(again, addresses);
        let routes = pod.pin.run(&["ip", "route"]);
        assert!(
            routes.contains("default via 10.42.0.1 dev eth0"),
            "{routes}"
        );
        assert_eq!(allocated(&node.dir().join("ipam")), ["10.42.0.2"]);

        let stats = network.stats(&pod.attachment.netns).unwrap();
        assert_eq!(stats.name, "eth0");
    });
}

#[test]
fn pods_reach_each_other_and_the_node_reaches_pods() {
    in_node_netns(|node| {
        let network = node.network("10.42.0.0/24");
        let a = node.pod("a", vec![]);
        let b = node.pod("b", vec![]);
        let ip_a = network.setup(&a.attachment).unwrap().ip.to_string();
        let ip_b = network.setup(&b.attachment).unwrap().ip.to_string();

        a.pin.run(&["busybox", "ping", "-c", "1", "-W", "3", &ip_b]);
        b.pin.run(&["busybox", "ping", "-c", "1", "-W", "3", &ip_a]);
        a.pin
            .run(&["busybox", "ping", "-c", "1", "-W", "3", "10.42.0.1"]);

        let _server = b.pin.serve("b", 8080);
        // Pod to pod keeps the source address (no masquerade on the bridge).
        let answer = a.pin.enter(|| fetch(&format!("{ip_b}:8080"))).unwrap();
        assert_eq!(answer, format!("b saw {ip_a}"));
        // The node reaches the pod from the bridge's address.
        let answer = fetch(&format!("{ip_b}:8080")).unwrap();
        assert_eq!(answer, "b saw 10.42.0.1");

        let stats = network.stats(&b.attachment.netns).unwrap();
        assert!(stats.rx_bytes > 0 && stats.tx_bytes > 0, "{stats:?}");
    });
}

#[test]
fn hostports_forward_from_outside_node_addresses_localhost_and_pods() {
    in_node_netns(|node| {
        let outside = node.outside();
        let network = node.network("10.42.0.0/24");
        let mut only_node_ip = tcp(18081, 8080);
        only_node_ip.host_ip = Some(NODE_IP.parse().unwrap());
        let web = node.pod("web", vec![tcp(18080, 8080), only_node_ip, tcp(0, 9090)]);
        let client = node.pod("client", vec![]);
        let web_ip = network.setup(&web.attachment).unwrap().ip.to_string();
        let client_ip = network.setup(&client.attachment).unwrap().ip.to_string();
        let _server = web.pin.serve("web", 8080);

        // From outside the node: the source is kept.
        let answer = outside
            .enter(|| fetch(&format!("{NODE_IP}:18080")))
            .unwrap();
        assert_eq!(answer, format!("web saw {OUTSIDE_IP}"));
        // From the node itself, on its address and on 127.0.0.1.
        let answer = fetch(&format!("{NODE_IP}:18080")).unwrap();
        assert_eq!(answer, format!("web saw {NODE_IP}"));
        let answer = fetch("127.0.0.1:18080").unwrap();
        assert_eq!(answer, "web saw 10.42.0.1");
        // From another pod, and from the pod itself (hairpin).
        let answer = client
            .pin
            .enter(|| fetch(&format!("{NODE_IP}:18080")))
            .unwrap();
        assert_eq!(answer, "web saw 10.42.0.1");
        let answer = web
            .pin
            .enter(|| fetch(&format!("{NODE_IP}:18080")))
            .unwrap();
        assert_eq!(answer, "web saw 10.42.0.1");
        assert_ne!(client_ip, web_ip);

        // A hostIP limits the forward to that address.
        let answer = outside
            .enter(|| fetch(&format!("{NODE_IP}:18081")))
            .unwrap();
        assert_eq!(answer, format!("web saw {OUTSIDE_IP}"));
        assert!(fetch("127.0.0.1:18081").is_err());

        let table = skiff_table();
        let forwards = rules_of(&table, "hostports");
        assert_eq!(forwards.len(), 2, "{forwards:#?}");
        assert!(forwards.iter().all(|rule| {
            rule["comment"]
                .as_str()
                .unwrap()
                .starts_with("sandbox-web ")
        }));

        // A pod cannot reach the node's loopback through the bridge.
        let input = rules_of(&table, "input");
        assert_eq!(input.len(), 1, "{input:#?}");

        network.teardown(&web.attachment).unwrap();
        assert!(rules_of(&skiff_table(), "hostports").is_empty());
        assert!(fetch("127.0.0.1:18080").is_err());
    });
}

#[test]
fn egress_is_masqueraded_and_the_rule_is_in_the_table() {
    in_node_netns(|node| {
        let outside = node.outside();
        let network = node.network("10.42.0.0/24");
        let pod = node.pod("a", vec![]);
        network.setup(&pod.attachment).unwrap();
        let _server = outside.serve("outside", 9000);

        let answer = pod
            .pin
            .enter(|| fetch(&format!("{OUTSIDE_IP}:9000")))
            .unwrap();
        assert_eq!(answer, format!("outside saw {NODE_IP}"));

        let table = skiff_table();
        let postrouting = rules_of(&table, "postrouting");
        let masquerades = postrouting
            .iter()
            .filter(|rule| rule["expr"].to_string().contains("masquerade"))
            .count();
        assert_eq!(masquerades, 3, "{postrouting:#?}");
        let egress = postrouting.last().unwrap()["expr"].to_string();
        assert!(
            egress.contains("@pod_cidrs") && egress.contains("@no_masquerade"),
            "{egress}"
        );
        let text = run("nft", &["list", "set", "inet", "skiff", "pod_cidrs"]);
        assert!(text.contains("10.42.0.0/24"), "{text}");
    });
}

#[test]
fn teardown_removes_everything_and_can_repeat() {
    in_node_netns(|node| {
        let network = node.network("10.42.0.0/24");
        let pod = node.pod("a", vec![tcp(18080, 80)]);
        let addresses = network.setup(&pod.attachment).unwrap();
        assert!(link_exists(&addresses.host_interface));

        network.teardown(&pod.attachment).unwrap();
        assert!(!link_exists(&addresses.host_interface));
        assert!(!pod.pin.succeeds(&["ip", "link", "show", "dev", "eth0"]));
        assert!(rules_of(&skiff_table(), "hostports").is_empty());
        assert!(allocated(&node.dir().join("ipam")).is_empty());

        network.teardown(&pod.attachment).unwrap();

        // The namespace itself gone (the pod's pin removed first) is fine too.
        let other = node.pod("b", vec![tcp(18081, 80)]);
        network.setup(&other.attachment).unwrap();
        let attachment = other.attachment.clone();
        drop(other);
        network.teardown(&attachment).unwrap();
        assert!(allocated(&node.dir().join("ipam")).is_empty());
        assert!(rules_of(&skiff_table(), "hostports").is_empty());
        assert_eq!(run("ip", &["-o", "link", "show", "master", "skiff0"]), "");
    });
}

#[test]
fn fifty_concurrent_setups_get_distinct_addresses_that_persist() {
    in_node_netns(|node| {
        let network = node.network("10.42.0.0/24");
        let pods: Vec<_> = (0..50)
            .map(|i| node.pod(&format!("p{i}"), vec![]))
            .collect();
        let ips: Vec<IpAddr> = std::thread::scope(|scope| {
            let handles: Vec<_> = pods
                .iter()
                .map(|pod| scope.spawn(|| network.setup(&pod.attachment).unwrap().ip))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = ips.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 50);
        let ports = run("ip", &["-o", "link", "show", "master", "skiff0"]);
        assert_eq!(ports.lines().count(), 50, "{ports}");

        // A restarted runtime finds the same allocations and the same rules.
        let restarted = node.network("10.42.0.0/24");
        assert_eq!(restarted.setup(&pods[7].attachment).unwrap().ip, ips[7]);
        let newcomer = node.pod("newcomer", vec![]);
        let fresh = restarted.setup(&newcomer.attachment).unwrap().ip;
        assert!(!ips.contains(&fresh));
        assert_eq!(rules_of(&skiff_table(), "postrouting").len(), 3);

        std::thread::scope(|scope| {
            for pod in &pods {
                let restarted = &restarted;
                scope.spawn(move || restarted.teardown(&pod.attachment).unwrap());
            }
        });
        restarted.teardown(&newcomer.attachment).unwrap();
        assert!(allocated(&node.dir().join("ipam")).is_empty());
        assert_eq!(run("ip", &["-o", "link", "show", "master", "skiff0"]), "");
    });
}

#[test]
fn a_full_cidr_is_refused_without_leaks() {
    in_node_netns(|node| {
        let network = node.network("10.99.0.0/30");
        let first = node.pod("first", vec![]);
        let second = node.pod("second", vec![]);
        assert_eq!(
            network.setup(&first.attachment).unwrap().ip,
            "10.99.0.2".parse::<IpAddr>().unwrap()
        );
        let err = network.setup(&second.attachment).unwrap_err();
        assert!(
            matches!(err, NetworkError::AddressesExhausted { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("no free address left in 10.99.0.0/30"),
            "{err}"
        );
        assert!(!link_exists(&BridgeNetwork::host_interface(
            "sandbox-second"
        )));
        assert_eq!(allocated(&node.dir().join("ipam")), ["10.99.0.2"]);
    });
}

#[test]
fn a_taken_hostport_is_refused_without_leaks() {
    in_node_netns(|node| {
        let network = node.network("10.42.0.0/24");
        let a = node.pod("a", vec![tcp(18080, 80)]);
        let b = node.pod("b", vec![tcp(18080, 8080)]);
        network.setup(&a.attachment).unwrap();
        let err = network.setup(&b.attachment).unwrap_err();
        assert!(
            matches!(&err, NetworkError::HostPortInUse { owner, .. } if owner == "sandbox-a"),
            "{err}"
        );
        assert!(!link_exists(&BridgeNetwork::host_interface("sandbox-b")));
        assert_eq!(allocated(&node.dir().join("ipam")), ["10.42.0.2"]);
        assert_eq!(rules_of(&skiff_table(), "hostports").len(), 1);
    });
}

#[test]
fn a_new_pod_cidr_serves_new_pods_and_keeps_old_ones() {
    in_node_netns(|node| {
        let network = node.network("10.42.0.0/24");
        let old = node.pod("old", vec![]);
        let old_ip = network.setup(&old.attachment).unwrap().ip.to_string();
        network
            .set_pod_cidr("10.42.1.0/24".parse().unwrap())
            .unwrap();
        let new = node.pod("new", vec![]);
        let addresses = network.setup(&new.attachment).unwrap();
        assert_eq!(addresses.ip.to_string(), "10.42.1.2");
        assert_eq!(addresses.gateway.to_string(), "10.42.1.1");

        new.pin
            .run(&["busybox", "ping", "-c", "1", "-W", "3", &old_ip]);
        // Both CIDRs masquerade (adjacent, so nft holds them as one /23).
        let text = run("nft", &["list", "set", "inet", "skiff", "pod_cidrs"]);
        assert!(text.contains("elements = { 10.42.0.0/23 }"), "{text}");
        // Setting up the old pod again keeps its address and gateway.
        let again = network.setup(&old.attachment).unwrap();
        assert_eq!(again.ip.to_string(), old_ip);
        assert_eq!(again.gateway.to_string(), "10.42.0.1");
        assert!(network.status().ready);
    });
}

#[test]
fn status_wants_a_pod_cidr() {
    in_node_netns(|node| {
        let network =
            BridgeNetwork::new(crate::network::BridgeConfig::new(node.dir().join("ipam"))).unwrap();
        let status = network.status();
        assert!(!status.ready);
        assert_eq!(status.reason, "NoPodCIDR");
        let pod = node.pod("a", vec![]);
        assert!(matches!(
            network.setup(&pod.attachment),
            Err(NetworkError::NoPodCidr)
        ));
        network
            .set_pod_cidr("10.42.0.0/24".parse().unwrap())
            .unwrap();
        assert!(network.status().ready);
        assert!(link_exists("skiff0"));
        let err = network
            .set_pod_cidr("fd00::/64".parse().unwrap())
            .unwrap_err();
        assert!(matches!(err, NetworkError::InvalidPodCidr { .. }), "{err}");
    });
}

#[test]
fn works_from_spawn_blocking_on_a_tokio_runtime() {
    in_node_netns(|node| {
        let network = std::sync::Arc::new(node.network("10.42.0.0/24"));
        let pod = node.pod("a", vec![tcp(18080, 80)]);
        // Worker and blocking threads start from this thread: the node netns.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let attachment = pod.attachment.clone();
        let addresses = runtime
            .block_on(async {
                let network = network.clone();
                tokio::task::spawn_blocking(move || network.setup(&attachment)).await
            })
            .unwrap()
            .unwrap();
        assert_eq!(addresses.ip.to_string(), "10.42.0.2");
        let attachment = pod.attachment.clone();
        runtime
            .block_on(async {
                tokio::task::spawn_blocking(move || network.teardown(&attachment)).await
            })
            .unwrap()
            .unwrap();
        assert!(!link_exists(&addresses.host_interface));
    });
}
