//! A pod's DNS configuration from its `dnsPolicy` and `dnsConfig`, as
//! kubelet's `GetPodDNS` builds it.

use std::net::IpAddr;

use k8s_cri::v1::DnsConfig;
use k8s_openapi::api::core::v1::Pod;

/// The most search domains a resolv.conf may carry (glibc 2.26+).
const MAX_SEARCHES: usize = 32;

/// The host's resolv.conf, as far as pods inherit it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// `search` (and `domain`) entries.
    pub searches: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => conf.servers.extend(words.next().map(str::to_owned)),
                Some("search") => conf.searches = words.map(str::to_owned).collect(),
                Some("domain") => conf.searches = words.take(1).map(str::to_owned).collect(),
                Some("options") => conf.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        conf
    }

    /// The host's `/etc/resolv.conf` (empty if unreadable).
    pub fn host() -> ResolvConf {
        std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| ResolvConf::parse(&t))
            .unwrap_or_default()
    }
}

/// The cluster's DNS settings.
#[derive(Debug, Clone, Copy)]
pub struct ClusterDns<'a> {
    /// The cluster DNS servers (empty: none configured).
    pub servers: &'a [IpAddr],
    /// `cluster.local`.
    pub domain: &'a str,
}

/// The DNS config of `pod`.
pub fn pod_dns_config(pod: &Pod, cluster: &ClusterDns<'_>, host: &ResolvConf) -> DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "ClusterFirst" => Some(!host_network),
        _ => Some(false),
    };
    let mut config = match cluster_first {
        None => DnsConfig::default(),
        Some(true) if !cluster.servers.is_empty() => {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let domain = cluster.domain.trim_end_matches('.');
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_owned(),
            ];
            searches.extend(host.searches.iter().cloned());
            DnsConfig {
                servers: cluster.servers.iter().map(ToString::to_string).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        Some(_) => DnsConfig {
            servers: host.servers.clone(),
            searches: host.searches.clone(),
            options: host.options.clone(),
        },
    };
    if let Some(extra) = spec.dns_config {
        for server in extra.nameservers.into_iter().flatten() {
            if !config.servers.contains(&server) {
                config.servers.push(server);
            }
        }
        for search in extra.searches.into_iter().flatten() {
            if !config.searches.contains(&search) {
                config.searches.push(search);
            }
        }
        for option in extra.options.into_iter().flatten() {
            let rendered = match option.value {
                Some(v) => format!("{}:{v}", option.name.clone().unwrap_or_default()),
                None => option.name.clone().unwrap_or_default(),
            };
            let name = option.name.unwrap_or_default();
            config
                .options
                .retain(|o| o.split(':').next() != Some(name.as_str()));
            config.options.push(rendered);
        }
    }
    config.searches.dedup();
    config.searches.truncate(MAX_SEARCHES);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

    fn pod(policy: Option<&str>, host_network: bool) -> Pod {
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(Into::into),
                host_network: Some(host_network),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn host() -> ResolvConf {
        ResolvConf::parse(
            "# comment\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch example.com corp\noptions rotate\n",
        )
    }

    const SERVERS: [IpAddr; 1] = [IpAddr::V4(std::net::Ipv4Addr::new(10, 43, 0, 10))];

    fn cluster() -> ClusterDns<'static> {
        ClusterDns {
            servers: &SERVERS,
            domain: "cluster.local",
        }
    }

    #[test]
    fn cluster_first_uses_the_cluster_dns() {
        let c = pod_dns_config(&pod(None, false), &cluster(), &host());
        assert_eq!(c.servers, ["10.43.0.10"]);
        assert_eq!(
            c.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "example.com",
                "corp"
            ]
        );
        assert_eq!(c.options, ["ndots:5"]);
    }

    #[test]
    fn host_network_and_default_use_the_host() {
        for (policy, host_net) in [(Some("ClusterFirst"), true), (Some("Default"), false)] {
            let c = pod_dns_config(&pod(policy, host_net), &cluster(), &host());
            assert_eq!(c.servers, ["1.1.1.1", "8.8.8.8"]);
            assert_eq!(c.options, ["rotate"]);
        }
        let c = pod_dns_config(
            &pod(Some("ClusterFirstWithHostNet"), true),
            &cluster(),
            &host(),
        );
        assert_eq!(c.servers, ["10.43.0.10"]);
        let none = ClusterDns {
            servers: &[],
            domain: "cluster.local",
        };
        let c = pod_dns_config(&pod(None, false), &none, &host());
        assert_eq!(
            c.servers,
            ["1.1.1.1", "8.8.8.8"],
            "no cluster DNS: the host's"
        );
    }

    #[test]
    fn dns_config_is_merged() {
        let mut p = pod(Some("None"), false);
        p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["9.9.9.9".into()]),
            searches: Some(vec!["a.b".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        });
        let c = pod_dns_config(&p, &cluster(), &host());
        assert_eq!(c.servers, ["9.9.9.9"]);
        assert_eq!(c.searches, ["a.b"]);
        assert_eq!(c.options, ["ndots:2", "edns0"]);
        let mut p = pod(None, false);
        p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
            options: Some(vec![PodDNSConfigOption {
                name: Some("ndots".into()),
                value: Some("1".into()),
            }]),
            ..Default::default()
        });
        let c = pod_dns_config(&p, &cluster(), &host());
        assert_eq!(c.options, ["ndots:1"]);
    }
}
