//! Resource quantities and what kubelet derives from requests and limits:
//! the pod's QoS class, its cgroup parent, and a container's CRI Linux
//! resources (CPU shares and quota, memory limit, OOM score adjustment).

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CFS period kubelet uses (100 ms).
const CPU_PERIOD: i64 = 100_000;
/// The smallest CPU shares value (kubelet's `MinShares`).
const MIN_SHARES: i64 = 2;
/// The largest CPU shares value.
const MAX_SHARES: i64 = 262_144;
/// The smallest CFS quota (1 ms).
const MIN_QUOTA: i64 = 1_000;
/// OOM score adjustment of Guaranteed containers.
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// OOM score adjustment of BestEffort containers.
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// A parsed quantity, in billionths of its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i128);

impl Amount {
    /// Parses Kubernetes' quantity syntax (`100m`, `1.5`, `64Mi`, `1e3`).
    pub fn parse(text: &str) -> Option<Amount> {
        let text = text.trim();
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{whole}{fraction}");
        let mantissa: i128 = digits.parse().ok()?;
        let (binary, exponent) = suffix_scale(suffix)?;
        // value = mantissa * binary * 10^(exponent - fraction digits); in nanos +9.
        let exponent10 = exponent + 9 - i32::try_from(fraction.len()).ok()?;
        let scaled = mantissa.checked_mul(binary)?;
        let nanos = if exponent10 >= 0 {
            scaled.checked_mul(10i128.checked_pow(exponent10 as u32)?)?
        } else {
            let divisor = 10i128.checked_pow(exponent10.unsigned_abs())?;
            // Rounded up, as Go's Quantity rounds.
            (scaled + divisor - 1) / divisor
        };
        Some(Amount(if negative { -nanos } else { nanos }))
    }

    /// From a quantity; `None` when it does not parse.
    pub fn of(quantity: &Quantity) -> Option<Amount> {
        Self::parse(&quantity.0)
    }

    /// Whole units, rounded up (Go's `Quantity.Value`).
    pub fn value(self) -> i64 {
        ceil_div(self.0, 1_000_000_000)
    }

    /// Thousandths, rounded up (Go's `Quantity.MilliValue`).
    pub fn milli_value(self) -> i64 {
        ceil_div(self.0, 1_000_000)
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

fn ceil_div(nanos: i128, unit: i128) -> i64 {
    let q = nanos.div_euclid(unit) + i128::from(nanos.rem_euclid(unit) != 0);
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// (binary multiplier, decimal exponent) of a suffix.
fn suffix_scale(suffix: &str) -> Option<(i128, i32)> {
    let binary = |power: u32| Some((1024i128.pow(power), 0));
    match suffix {
        "" => Some((1, 0)),
        "n" => Some((1, -9)),
        "u" => Some((1, -6)),
        "m" => Some((1, -3)),
        "k" => Some((1, 3)),
        "M" => Some((1, 6)),
        "G" => Some((1, 9)),
        "T" => Some((1, 12)),
        "P" => Some((1, 15)),
        "E" => Some((1, 18)),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            Some((1, exp.parse().ok()?))
        }
    }
}

/// A container's request or limit for `resource`, if set and valid.
pub fn request(container: &Container, resource: &str) -> Option<Amount> {
    amount_in(
        container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref()),
        resource,
    )
}

/// A container's limit for `resource`, if set and valid.
pub fn limit(container: &Container, resource: &str) -> Option<Amount> {
    amount_in(
        container.resources.as_ref().and_then(|r| r.limits.as_ref()),
        resource,
    )
}

fn amount_in(
    map: Option<&std::collections::BTreeMap<String, Quantity>>,
    resource: &str,
) -> Option<Amount> {
    map.and_then(|m| m.get(resource)).and_then(Amount::of)
}

/// The pod's QoS class: its `status.qosClass` when the apiserver set it,
/// else computed as upstream's `GetPodQOS`.
pub fn qos_class(pod: &Pod) -> &'static str {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => return "Guaranteed",
        Some("Burstable") => return "Burstable",
        Some("BestEffort") => return "BestEffort",
        _ => {}
    }
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut requests = [Amount(0), Amount(0)];
    let mut limits = [Amount(0), Amount(0)];
    let mut any_request = [false, false];
    let mut any_limit = [false, false];
    let mut guaranteed = true;
    for container in containers {
        for (i, resource) in ["cpu", "memory"].into_iter().enumerate() {
            if let Some(r) = request(container, resource).filter(|a| !a.is_zero()) {
                requests[i].0 += r.0;
                any_request[i] = true;
            }
            match limit(container, resource).filter(|a| !a.is_zero()) {
                Some(l) => {
                    limits[i].0 += l.0;
                    any_limit[i] = true;
                }
                None => guaranteed = false,
            }
        }
    }
    if !any_request.iter().any(|b| *b) && !any_limit.iter().any(|b| *b) {
        return "BestEffort";
    }
    if guaranteed {
        for i in 0..2 {
            if any_request[i] && requests[i] != limits[i] {
                guaranteed = false;
            }
        }
    }
    if guaranteed && any_request == any_limit {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's cgroup parent with the cgroupfs driver:
/// `<root>/kubepods[/burstable|/besteffort]/pod<uid>`.
pub fn cgroup_parent(cgroup_root: &str, qos: &str, uid: &str) -> String {
    let root = cgroup_root.trim_end_matches('/');
    let class = match qos {
        "Guaranteed" => String::new(),
        "BestEffort" => "/besteffort".to_owned(),
        _ => "/burstable".to_owned(),
    };
    format!("{root}/kubepods{class}/pod{uid}")
}

/// CPU shares for a request in millicores (kubelet's `MilliCPUToShares`).
pub fn milli_cpu_to_shares(milli: i64) -> i64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    (milli * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota for a limit in millicores (kubelet's `MilliCPUToQuota`).
pub fn milli_cpu_to_quota(milli: i64, period: i64) -> i64 {
    if milli <= 0 {
        return 0;
    }
    (milli * period / 1000).max(MIN_QUOTA)
}

/// The OOM score adjustment kubelet gives a container of a pod of `qos`
/// on a node with `memory_capacity` bytes.
pub fn oom_score_adj(container: &Container, qos: &str, memory_capacity: i64) -> i64 {
    match qos {
        "Guaranteed" => GUARANTEED_OOM_SCORE_ADJ,
        "BestEffort" => BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {
            let request = request(container, "memory").map_or(0, Amount::value);
            let capacity = memory_capacity.max(1);
            let adj = 1000 - (1000 * request) / capacity;
            if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
                1000 + GUARANTEED_OOM_SCORE_ADJ
            } else if adj == BEST_EFFORT_OOM_SCORE_ADJ {
                adj - 1
            } else {
                adj
            }
        }
    }
}

/// The CRI Linux resources kubelet asks for a container.
pub fn linux_resources(
    container: &Container,
    qos: &str,
    memory_capacity: i64,
) -> k8s_cri::v1::LinuxContainerResources {
    let cpu_request = request(container, "cpu")
        .or_else(|| limit(container, "cpu"))
        .map_or(0, Amount::milli_value);
    let memory_limit = limit(container, "memory").map_or(0, Amount::value);
    let mut resources = k8s_cri::v1::LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(cpu_request),
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom_score_adj(container, qos, memory_capacity),
        ..Default::default()
    };
    if memory_limit > 0 {
        // No swap beyond the limit (kubelet's NoSwap on cgroup v1).
        resources.memory_swap_limit_in_bytes = memory_limit;
    }
    if let Some(cpu_limit) = limit(container, "cpu").map(Amount::milli_value) {
        resources.cpu_period = CPU_PERIOD;
        resources.cpu_quota = milli_cpu_to_quota(cpu_limit, CPU_PERIOD);
    }
    resources
}

/// What the node offers, for limits that are not set (downward API) and
/// OOM scores.
#[derive(Debug, Clone, Copy)]
pub struct NodeCapacity {
    /// CPUs, in millicores.
    pub cpu_millis: i64,
    /// Memory, in bytes.
    pub memory_bytes: i64,
}

impl NodeCapacity {
    /// Reads this machine's CPU count and `MemTotal`.
    pub fn of_this_machine() -> NodeCapacity {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
            .map_or(1 << 30, |kib| kib * 1024);
        NodeCapacity {
            cpu_millis: cpus * 1000,
            memory_bytes: memory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn q(s: &str) -> Amount {
        Amount::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("64Mi").value(), 64 * 1024 * 1024);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("1m").value(), 1, "Value rounds up");
        assert_eq!(q("250u").milli_value(), 1);
        assert_eq!(q("-1").value(), -1);
        for bad in ["", "abc", "1.2.3", "5Qi", "."] {
            assert!(Amount::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&pod(vec![container(&[], &[])])), "BestEffort");
        let guaranteed = container(
            &[("cpu", "500m"), ("memory", "64Mi")],
            &[("cpu", "0.5"), ("memory", "64Mi")],
        );
        assert_eq!(qos_class(&pod(vec![guaranteed.clone()])), "Guaranteed");
        let burstable = container(&[("cpu", "100m")], &[("cpu", "200m"), ("memory", "1Gi")]);
        assert_eq!(qos_class(&pod(vec![burstable])), "Burstable");
        let only_requests = container(&[("memory", "1Gi")], &[]);
        assert_eq!(
            qos_class(&pod(vec![guaranteed, only_requests])),
            "Burstable"
        );
    }

    #[test]
    fn cgroup_parents_follow_the_qos_hierarchy() {
        assert_eq!(cgroup_parent("/", "Guaranteed", "u1"), "/kubepods/podu1");
        assert_eq!(
            cgroup_parent("/skt3", "Burstable", "u1"),
            "/skt3/kubepods/burstable/podu1"
        );
        assert_eq!(
            cgroup_parent("/", "BestEffort", "u1"),
            "/kubepods/besteffort/podu1"
        );
    }

    #[test]
    fn cpu_and_memory_become_cri_resources() {
        let c = container(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "128Mi")]);
        let r = linux_resources(&c, "Burstable", 4 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.memory_swap_limit_in_bytes, 128 << 20);
        let none = linux_resources(&container(&[], &[]), "BestEffort", 4 << 30);
        assert_eq!(none.cpu_shares, 2);
        assert_eq!(none.cpu_quota, 0);
        assert_eq!(none.oom_score_adj, 1000);
        assert_eq!(milli_cpu_to_quota(1, 100_000), 1000);
    }

    #[test]
    fn oom_scores_follow_the_memory_request() {
        let c = container(&[("memory", "1Gi")], &[]);
        assert_eq!(oom_score_adj(&c, "Burstable", 4 << 30), 750);
        assert_eq!(oom_score_adj(&c, "Burstable", 1 << 30), 3);
        assert_eq!(
            oom_score_adj(&container(&[], &[]), "Burstable", 1 << 30),
            999
        );
        assert_eq!(oom_score_adj(&c, "Guaranteed", 1 << 30), -997);
    }
}
