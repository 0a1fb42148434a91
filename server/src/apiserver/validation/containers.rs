//! Containers: names, images, ports, env, mounts, probes, resources
//! (`validateContainerCommon` and its helpers).

use std::collections::BTreeSet;

use serde_json::Value;

use super::cause::{
    Errs, child, duplicate, field, forbidden, go_quote, index, int, invalid, key, list,
    nonnegative, not_found, not_supported, required, s, sorted_entries,
};
use super::names::{dns1123_label, env_var_name, port_name, port_num, qualified_name};
use super::quantity::{QUANTITY_FORMAT_ERROR, Quantity};
use super::volumes::{Volumes, local_descending_path};

/// Which list a container sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContainerKind {
    /// `spec.containers`.
    Regular,
    /// `spec.initContainers`.
    Init,
}

/// Validates one list of containers; `taken` holds the names already used
/// (regular containers when checking init containers).
pub(super) fn containers(
    list_value: &[Value],
    path: &str,
    kind: ContainerKind,
    vols: &Volumes,
    taken: &mut BTreeSet<String>,
    errs: &mut Errs,
) {
    for (i, c) in list_value.iter().enumerate() {
        let p = index(path, i);
        common(c, &p, vols, errs);
        let name = s(c, "name");
        if taken.contains(name) {
            duplicate(errs, &child(&p, "name"), go_quote(name));
        } else if kind == ContainerKind::Regular || !name.is_empty() {
            taken.insert(name.to_owned());
        }
        let restart = c.get("restartPolicy").and_then(Value::as_str);
        match kind {
            ContainerKind::Regular => {
                if let Some(l) = field(c, "lifecycle") {
                    lifecycle(l, &child(&p, "lifecycle"), errs);
                }
                probes(c, &p, errs);
                if field(c, "restartPolicy").is_some() {
                    forbidden(
                        errs,
                        &child(&p, "restartPolicy"),
                        "may not be set for non-init containers",
                    );
                }
            }
            ContainerKind::Init => {
                if let Some(policy) = restart.filter(|r| *r != "Always") {
                    not_supported(
                        errs,
                        &child(&p, "restartPolicy"),
                        go_quote(policy),
                        &["Always"],
                    );
                }
                if restart == Some("Always") {
                    if let Some(l) = field(c, "lifecycle") {
                        lifecycle(l, &child(&p, "lifecycle"), errs);
                    }
                    probes(c, &p, errs);
                } else {
                    for probe in [
                        "lifecycle",
                        "livenessProbe",
                        "readinessProbe",
                        "startupProbe",
                    ] {
                        if field(c, probe).is_some() {
                            forbidden(
                                errs,
                                &child(&p, probe),
                                "may not be set for init containers without restartPolicy=Always",
                            );
                        }
                    }
                }
            }
        }
    }
    host_port_conflicts(list_value, path, kind, errs);
}

fn common(c: &Value, p: &str, vols: &Volumes, errs: &mut Errs) {
    let name = s(c, "name");
    let name_path = child(p, "name");
    if name.is_empty() {
        required(errs, &name_path, "");
    } else {
        for msg in dns1123_label(name) {
            invalid(errs, &name_path, go_quote(name), &msg);
        }
    }
    if s(c, "image").is_empty() {
        required(errs, &child(p, "image"), "");
    }
    // Defaulted fields: only a value the client set is checked.
    if let Some(policy) = c.get("terminationMessagePolicy").and_then(Value::as_str) {
        let path = child(p, "terminationMessagePolicy");
        match policy {
            "File" | "FallbackToLogsOnError" => {}
            "" => required(errs, &path, ""),
            other => not_supported(
                errs,
                &path,
                go_quote(other),
                &["File", "FallbackToLogsOnError"],
            ),
        }
    }
    if let Some(policy) = c.get("imagePullPolicy").and_then(Value::as_str) {
        let path = child(p, "imagePullPolicy");
        match policy {
            "Always" | "IfNotPresent" | "Never" => {}
            "" => required(errs, &path, ""),
            other => not_supported(
                errs,
                &path,
                go_quote(other),
                &["Always", "IfNotPresent", "Never"],
            ),
        }
    }
    ports(c, &child(p, "ports"), errs);
    env(c, &child(p, "env"), errs);
    env_from(c, &child(p, "envFrom"), errs);
    volume_mounts(c, &child(p, "volumeMounts"), vols, errs);
    volume_devices(c, &child(p, "volumeDevices"), vols, errs);
    if let Some(res) = field(c, "resources") {
        resources(res, &child(p, "resources"), errs);
    }
}

fn ports(c: &Value, path: &str, errs: &mut Errs) {
    let mut names = BTreeSet::new();
    for (i, port) in list(c, "ports").iter().enumerate() {
        let p = index(path, i);
        let name = s(port, "name");
        if !name.is_empty() {
            let msgs = port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    invalid(errs, &child(&p, "name"), go_quote(name), &msg);
                }
            } else if !names.insert(name) {
                duplicate(errs, &child(&p, "name"), go_quote(name));
            }
        }
        match int(port, "containerPort").unwrap_or(0) {
            0 => required(errs, &child(&p, "containerPort"), ""),
            n => {
                for msg in port_num(n) {
                    invalid(errs, &child(&p, "containerPort"), n.to_string(), &msg);
                }
            }
        }
        if let Some(n) = int(port, "hostPort").filter(|n| *n != 0) {
            for msg in port_num(n) {
                invalid(errs, &child(&p, "hostPort"), n.to_string(), &msg);
            }
        }
        protocol(port, &p, errs);
    }
}

/// A port's protocol (defaulted to TCP when absent).
pub(super) fn protocol(port: &Value, p: &str, errs: &mut Errs) {
    if let Some(proto) = port.get("protocol").and_then(Value::as_str) {
        let path = child(p, "protocol");
        match proto {
            "TCP" | "UDP" | "SCTP" => {}
            "" => required(errs, &path, ""),
            other => not_supported(errs, &path, go_quote(other), &["SCTP", "TCP", "UDP"]),
        }
    }
}

fn host_port_conflicts(list_value: &[Value], path: &str, kind: ContainerKind, errs: &mut Errs) {
    let mut seen = BTreeSet::new();
    for (ci, c) in list_value.iter().enumerate() {
        if kind == ContainerKind::Init {
            // Init containers run one by one: only conflicts within one count.
            seen.clear();
        }
        let ports_path = child(&index(path, ci), "ports");
        for (pi, port) in list(c, "ports").iter().enumerate() {
            let Some(host_port) = int(port, "hostPort").filter(|p| *p != 0) else {
                continue;
            };
            let key = format!("{}/{}/{host_port}", s(port, "protocol"), s(port, "hostIP"));
            if seen.contains(&key) {
                duplicate(
                    errs,
                    &child(&index(&ports_path, pi), "hostPort"),
                    go_quote(&key),
                );
            } else {
                seen.insert(key);
            }
        }
    }
}

fn env(c: &Value, path: &str, errs: &mut Errs) {
    for (i, var) in list(c, "env").iter().enumerate() {
        let p = index(path, i);
        let name = s(var, "name");
        if name.is_empty() {
            required(errs, &child(&p, "name"), "");
        } else {
            for msg in env_var_name(name) {
                invalid(errs, &child(&p, "name"), go_quote(name), &msg);
            }
        }
        let Some(from) = field(var, "valueFrom") else {
            continue;
        };
        let from_path = child(&p, "valueFrom");
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ];
        let count = sources.iter().filter(|k| field(from, k).is_some()).count();
        if count == 0 {
            invalid(
                errs,
                &from_path,
                "\"\"",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            );
        } else if !s(var, "value").is_empty() {
            invalid(
                errs,
                &from_path,
                "\"\"",
                "may not be specified when `value` is not empty",
            );
        } else if count > 1 {
            invalid(
                errs,
                &from_path,
                "\"\"",
                "may not have more than one field specified at a time",
            );
        }
        for selector in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(sel) = field(from, selector)
                && s(sel, "key").is_empty()
            {
                required(errs, &child(&child(&from_path, selector), "key"), "");
            }
        }
        if let Some(fr) = field(from, "fieldRef")
            && s(fr, "fieldPath").is_empty()
        {
            required(
                errs,
                &child(&child(&from_path, "fieldRef"), "fieldPath"),
                "",
            );
        }
    }
}

fn env_from(c: &Value, path: &str, errs: &mut Errs) {
    for (i, source) in list(c, "envFrom").iter().enumerate() {
        let p = index(path, i);
        let prefix = s(source, "prefix");
        if !prefix.is_empty() {
            for msg in env_var_name(prefix) {
                invalid(errs, &child(&p, "prefix"), go_quote(prefix), &msg);
            }
        }
        let count = ["configMapRef", "secretRef"]
            .iter()
            .filter(|k| field(source, k).is_some())
            .count();
        if count == 0 {
            invalid(
                errs,
                path,
                "\"\"",
                "must specify one of: `configMapRef` or `secretRef`",
            );
        } else if count > 1 {
            invalid(
                errs,
                path,
                "\"\"",
                "may not have more than one field specified at a time",
            );
        }
        for r in ["configMapRef", "secretRef"] {
            if let Some(reference) = field(source, r)
                && s(reference, "name").is_empty()
            {
                required(errs, &child(&child(&p, r), "name"), "");
            }
        }
    }
}

fn volume_mounts(c: &Value, path: &str, vols: &Volumes, errs: &mut Errs) {
    let mut mount_points = BTreeSet::new();
    for (i, mount) in list(c, "volumeMounts").iter().enumerate() {
        let p = index(path, i);
        let name = s(mount, "name");
        if name.is_empty() {
            required(errs, &child(&p, "name"), "");
        }
        if !vols.names.contains(name) {
            not_found(errs, &child(&p, "name"), go_quote(name));
        }
        let mount_path = s(mount, "mountPath");
        if mount_path.is_empty() {
            required(errs, &child(&p, "mountPath"), "");
        }
        if !mount_points.insert(mount_path) {
            invalid(
                errs,
                &child(&p, "mountPath"),
                go_quote(mount_path),
                "must be unique",
            );
        }
        let sub_path = s(mount, "subPath");
        if !sub_path.is_empty() {
            // Upstream reports these on the list's path, not the item's.
            local_descending_path(sub_path, &child(path, "subPath"), errs);
        }
        let expr = s(mount, "subPathExpr");
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                invalid(
                    errs,
                    &child(&p, "subPathExpr"),
                    go_quote(expr),
                    "subPathExpr and subPath are mutually exclusive",
                );
            }
            local_descending_path(expr, &child(path, "subPathExpr"), errs);
        }
        if let Some(prop) = mount.get("mountPropagation").and_then(Value::as_str)
            && !matches!(prop, "Bidirectional" | "HostToContainer" | "None")
        {
            not_supported(
                errs,
                &child(path, "mountPropagation"),
                go_quote(prop),
                &["Bidirectional", "HostToContainer", "None"],
            );
        }
    }
}

fn volume_devices(c: &Value, path: &str, vols: &Volumes, errs: &mut Errs) {
    for (i, dev) in list(c, "volumeDevices").iter().enumerate() {
        let p = index(path, i);
        let name = s(dev, "name");
        if name.is_empty() {
            required(errs, &child(&p, "name"), "");
        }
        if !vols.names.contains(name) {
            not_found(errs, &child(&p, "name"), go_quote(name));
        } else if !vols.claims.contains(name) {
            invalid(
                errs,
                &child(&p, "name"),
                go_quote(name),
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            );
        }
        if s(dev, "devicePath").is_empty() {
            required(errs, &child(&p, "devicePath"), "");
        }
    }
}

fn probes(c: &Value, p: &str, errs: &mut Errs) {
    for name in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(probe) = field(c, name) else {
            continue;
        };
        let path = child(p, name);
        handler(
            probe,
            &path,
            &["exec", "httpGet", "tcpSocket", "grpc"],
            errs,
        );
        for n in [
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ] {
            nonnegative(errs, &child(&path, n), int(probe, n));
        }
        if let Some(grace) = int(probe, "terminationGracePeriodSeconds") {
            if name == "readinessProbe" {
                invalid(
                    errs,
                    &child(&path, "terminationGracePeriodSeconds"),
                    grace.to_string(),
                    "must not be set for readinessProbes",
                );
            } else if grace <= 0 {
                invalid(
                    errs,
                    &child(&path, "terminationGracePeriodSeconds"),
                    grace.to_string(),
                    "must be greater than 0",
                );
            }
        }
        if name != "readinessProbe"
            && let Some(n) = int(probe, "successThreshold").filter(|n| *n != 1)
        {
            invalid(
                errs,
                &child(&path, "successThreshold"),
                n.to_string(),
                "must be 1",
            );
        }
    }
}

fn lifecycle(l: &Value, path: &str, errs: &mut Errs) {
    for hook in ["postStart", "preStop"] {
        if let Some(h) = field(l, hook) {
            handler(
                h,
                &child(path, hook),
                &["exec", "httpGet", "tcpSocket", "sleep"],
                errs,
            );
        }
    }
}

fn handler(h: &Value, path: &str, kinds: &[&str], errs: &mut Errs) {
    let mut count = 0;
    for kind in kinds {
        let Some(action) = field(h, kind) else {
            continue;
        };
        let p = child(path, kind);
        if count > 0 {
            forbidden(errs, &p, "may not specify more than 1 handler type");
            continue;
        }
        count += 1;
        match *kind {
            "exec" if super::cause::list(action, "command").is_empty() => {
                required(errs, &child(&p, "command"), "");
            }
            "httpGet" => {
                port_num_or_name(action.get("port"), &child(&p, "port"), errs);
                if let Some(scheme) = action.get("scheme").and_then(Value::as_str)
                    && !matches!(scheme, "HTTP" | "HTTPS")
                {
                    not_supported(
                        errs,
                        &child(&p, "scheme"),
                        go_quote(scheme),
                        &["HTTP", "HTTPS"],
                    );
                }
            }
            "tcpSocket" | "grpc" => port_num_or_name(action.get("port"), &child(&p, "port"), errs),
            _ => {}
        }
    }
    if count == 0 {
        required(errs, path, "must specify a handler type");
    }
}

/// `ValidatePortNumOrName`.
pub(super) fn port_num_or_name(port: Option<&Value>, path: &str, errs: &mut Errs) {
    match port {
        Some(Value::String(name)) => {
            for msg in port_name(name) {
                invalid(errs, path, go_quote(name), &msg);
            }
        }
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            for msg in port_num(n) {
                invalid(errs, path, n.to_string(), &msg);
            }
        }
    }
}

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

/// `ValidateContainerResourceRequirements`.
pub(super) fn resources(res: &Value, path: &str, errs: &mut Errs) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let limits = res.get("limits");
    for (name, value) in sorted_entries(limits) {
        let p = key(&lim_path, name);
        resource_name(name, &p, errs);
        quantity_value(name, value, &p, errs);
    }
    for (name, value) in sorted_entries(res.get("requests")) {
        let p = key(&req_path, name);
        resource_name(name, &p, errs);
        let Some(request) = quantity_value(name, value, &p, errs) else {
            continue;
        };
        match limits
            .and_then(|l| l.get(name))
            .and_then(Quantity::from_value)
        {
            Some(limit) => {
                let order = request.cmp_value(&limit);
                if order != std::cmp::Ordering::Equal && !overcommit_allowed(name) {
                    invalid(
                        errs,
                        &req_path,
                        go_quote(&request.canonical()),
                        &format!("must be equal to {name} limit of {}", limit.canonical()),
                    );
                } else if order == std::cmp::Ordering::Greater {
                    invalid(
                        errs,
                        &req_path,
                        go_quote(&request.canonical()),
                        &format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.canonical()
                        ),
                    );
                }
            }
            None if !overcommit_allowed(name) => required(
                errs,
                &lim_path,
                "Limit must be set for non overcommitable resources",
            ),
            None => {}
        }
    }
    let requests = res.get("requests");
    let cpu_or_memory = |k: &str| k == "cpu" || k == "memory";
    if !has_key(limits, cpu_or_memory)
        && !has_key(requests, cpu_or_memory)
        && (has_key(limits, is_hugepages) || has_key(requests, is_hugepages))
    {
        forbidden(errs, path, "HugePages require cpu or memory");
    }
}

fn has_key(m: Option<&Value>, f: fn(&str) -> bool) -> bool {
    m.and_then(Value::as_object)
        .is_some_and(|o| o.keys().any(|k| f(k)))
}

fn resource_name(name: &str, path: &str, errs: &mut Errs) {
    let msgs = qualified_name(name);
    if !msgs.is_empty() {
        for msg in msgs {
            invalid(errs, path, go_quote(name), &msg);
        }
        return;
    }
    let standard = STANDARD_CONTAINER_RESOURCES.contains(&name) || is_hugepages(name);
    if !name.contains('/') && !standard {
        invalid(
            errs,
            path,
            go_quote(name),
            "must be a standard resource for containers",
        );
    }
}

/// `ValidateResourceQuantityValue` (nonnegative; whole numbers for
/// extended resources); the parsed quantity when it parses.
pub(super) fn quantity_value(
    name: &str,
    value: &Value,
    path: &str,
    errs: &mut Errs,
) -> Option<Quantity> {
    let Some(q) = Quantity::from_value(value) else {
        invalid(
            errs,
            path,
            super::cause::go_value(Some(value)),
            QUANTITY_FORMAT_ERROR,
        );
        return None;
    };
    if q.is_negative() {
        invalid(
            errs,
            path,
            go_quote(&q.canonical()),
            "must be greater than or equal to 0",
        );
    }
    if !is_native(name) && !q.is_integer() {
        invalid(errs, path, q.canonical(), "must be an integer");
    }
    Some(q)
}
