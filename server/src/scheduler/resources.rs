//! Resource arithmetic: what a pod requests and what a node can hold.

use serde_json::Value;

use super::quantity::Quantity;

/// CPU the scorer assumes for a container that requests none (upstream's
/// `DefaultMilliCPURequest`).
const DEFAULT_MILLI_CPU: i64 = 100;
/// Memory the scorer assumes for a container that requests none (200 MiB,
/// upstream's `DefaultMemoryRequest`).
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
}

impl Resources {
    fn add(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
    }

    fn max(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
    }

    /// The sum of two amounts.
    pub fn plus(mut self, other: Resources) -> Resources {
        self.add(other);
        self
    }

    /// Reads a ResourceList (`{"cpu": "100m", "memory": "1Gi"}`); entries
    /// that are missing or unparsable count as zero.
    fn from_list(list: Option<&Value>) -> Resources {
        let get = |name: &str, milli: bool| {
            list.and_then(|l| l.get(name))
                .and_then(quantity)
                .and_then(|q| if milli { q.milli_value() } else { q.value() })
                .unwrap_or(0)
        };
        Resources {
            milli_cpu: get("cpu", true),
            memory: get("memory", false),
            ephemeral_storage: get("ephemeral-storage", false),
        }
    }
}

/// A quantity given as a JSON string or number.
fn quantity(value: &Value) -> Option<Quantity> {
    match value {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// What a node offers: `status.allocatable` (falling back to `capacity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Allocatable {
    /// CPU, memory and ephemeral storage.
    pub resources: Resources,
    /// How many pods the node accepts.
    pub pods: i64,
}

/// Reads a node's allocatable resources.
pub(super) fn allocatable(node: &Value) -> Allocatable {
    let status = node.get("status");
    let list = status
        .and_then(|s| s.get("allocatable"))
        .filter(|l| l.as_object().is_some_and(|o| !o.is_empty()))
        .or_else(|| status.and_then(|s| s.get("capacity")));
    Allocatable {
        resources: Resources::from_list(list),
        pods: list
            .and_then(|l| l.get("pods"))
            .and_then(quantity)
            .and_then(|q| q.value())
            .unwrap_or(0),
    }
}

/// A container's requests; limits stand in for requests that are missing,
/// as the apiserver's defaulting would have done.
fn container_requests(container: &Value, non_zero: bool) -> Resources {
    let resources = container.get("resources");
    let requests = resources.and_then(|r| r.get("requests"));
    let limits = resources.and_then(|r| r.get("limits"));
    let pick = |name: &str| {
        requests
            .and_then(|r| r.get(name))
            .or_else(|| limits.and_then(|l| l.get(name)))
    };
    let mut out = Resources::default();
    let found = |name: &str, milli: bool| {
        pick(name)
            .and_then(quantity)
            .and_then(|q| if milli { q.milli_value() } else { q.value() })
    };
    let cpu = found("cpu", true);
    let memory = found("memory", false);
    out.ephemeral_storage = found("ephemeral-storage", false).unwrap_or(0);
    out.milli_cpu = cpu.unwrap_or(if non_zero { DEFAULT_MILLI_CPU } else { 0 });
    out.memory = memory.unwrap_or(if non_zero { DEFAULT_MEMORY } else { 0 });
    out
}

/// A pod's effective requests: app containers (and sidecars) summed, the
/// largest init-container phase, plus overhead. With `non_zero`, containers
/// without a CPU or memory request count upstream's defaults (for scoring).
pub(super) fn pod_requests(pod: &Value, non_zero: bool) -> Resources {
    let spec = pod.get("spec");
    let list = |field: &str| -> Vec<Value> {
        spec.and_then(|s| s.get(field))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut containers = Resources::default();
    for container in list("containers") {
        containers.add(container_requests(&container, non_zero));
    }
    // Sidecars (restartable init containers) keep running next to later init
    // containers and the app containers; plain init containers run alone.
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in list("initContainers") {
        let requests = container_requests(&container, non_zero);
        if container.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            sidecars.add(requests);
            init_peak.max(sidecars);
        } else {
            init_peak.max(requests.plus(sidecars));
        }
    }
    let mut total = containers.plus(sidecars);
    total.max(init_peak);
    total.add(Resources::from_list(spec.and_then(|s| s.get("overhead"))));
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_containers_count_as_max_and_sidecars_add() {
        let pod = json!({"spec": {
            "initContainers": [
                {"name": "setup", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}},
            ],
            "overhead": {"cpu": "10m"},
        }});
        let requests = pod_requests(&pod, false);
        assert_eq!(requests.milli_cpu, 2010);
        assert_eq!(requests.memory, 1 << 30);
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pod_requests(&pod, false), Resources::default());
        assert_eq!(pod_requests(&pod, true).milli_cpu, 100);
    }
}
