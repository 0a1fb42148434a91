//! The files a pod's containers see as `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf`, written into the pod's directory as containerd does.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use k8s_cri::v1::DnsConfig;

/// The host's resolver configuration, used when the pod gives none.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// The host's hosts file, used for host-network pods.
pub const HOST_HOSTS: &str = "/etc/hosts";

/// Writes `/etc/hostname` content.
pub fn write_hostname(path: &Path, hostname: &str) -> io::Result<()> {
    write_atomic(path, format!("{hostname}\n").as_bytes())
}

/// Writes `/etc/hosts`: the host's for host-network pods, else the usual
/// loopback entries plus the pod's own address when known.
pub fn write_hosts(
    path: &Path,
    host_network: bool,
    hostname: &str,
    pod_ip: Option<&str>,
) -> io::Result<()> {
    if host_network {
        return match fs::read(HOST_HOSTS) {
            Ok(content) => write_atomic(path, &content),
            Err(err) if err.kind() == io::ErrorKind::NotFound => write_atomic(path, b""),
            Err(err) => Err(err),
        };
    }
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    write_atomic(path, hosts.as_bytes())
}

/// Writes `/etc/resolv.conf` from the pod's DNS config; without one, the
/// host's file is copied (containerd's behaviour for `dnsPolicy: Default`).
pub fn write_resolv_conf(path: &Path, dns: Option<&DnsConfig>) -> io::Result<()> {
    let Some(dns) =
        dns.filter(|d| !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()))
    else {
        return match fs::read(HOST_RESOLV_CONF) {
            Ok(content) => write_atomic(path, &content),
            Err(err) if err.kind() == io::ErrorKind::NotFound => write_atomic(path, b""),
            Err(err) => Err(err),
        };
    };
    write_atomic(path, resolv_conf(dns).as_bytes())
}

/// The resolv.conf content for `dns`.
pub fn resolv_conf(dns: &DnsConfig) -> String {
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

/// Replaces `path` with `content` so a reader never sees half a file.
/// World-readable: containers run as any user and must read these files.
pub fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lists_searches_servers_and_options_as_kubelet_expects() {
        let dns = DnsConfig {
            servers: vec!["10.43.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn files_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        write_hosts(&hosts, false, "web-0", Some("10.42.0.7")).unwrap();
        let content = fs::read_to_string(&hosts).unwrap();
        assert!(content.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(content.ends_with("10.42.0.7\tweb-0\n"));
        let hostname = dir.path().join("hostname");
        write_hostname(&hostname, "web-0").unwrap();
        assert_eq!(fs::read_to_string(hostname).unwrap(), "web-0\n");
        let resolv = dir.path().join("resolv.conf");
        write_resolv_conf(&resolv, None).unwrap();
        assert!(resolv.exists());
    }
}
