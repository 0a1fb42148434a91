//! What the apiserver knows of an object type's fields when patching: the
//! `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` of the
//! OpenAPI schema (the Go struct tags `patchStrategy` and `patchMergeKey`),
//! and the list and map types server-side apply merges by.

/// Patch metadata of one field of an object type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMeta {
    /// The field's patch strategies (`x-kubernetes-patch-strategy` split on
    /// `,`): `merge`, `retainKeys`, `replace`; empty for the default (maps
    /// merge, lists are replaced).
    pub strategies: Vec<String>,
    /// The key that identifies a list's items when they are merged
    /// (`x-kubernetes-patch-merge-key`), e.g. `name` for containers.
    pub merge_key: Option<String>,
    /// The OpenAPI definition of the field's value when it is an object, of
    /// its items when it is a list, or of its values when it is a map
    /// (`additionalProperties`), e.g. `io.k8s.api.core.v1.Container` for
    /// `PodSpec.containers`; `None` for scalars and untyped values.
    pub definition: Option<String>,
    /// `x-kubernetes-list-type` of a list field: `atomic`, `set` or `map`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys` of a `map` list, e.g. `["containerPort", "protocol"]`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type` of an object field: `atomic` or `granular`.
    pub map_type: Option<String>,
}

impl FieldMeta {
    /// Whether the field's strategies include `strategy`.
    pub fn has(&self, strategy: &str) -> bool {
        self.strategies.iter().any(|s| s == strategy)
    }
}

/// Patch metadata by OpenAPI definition and field name.
pub trait PatchSchema: Send + Sync {
    /// Metadata of `field` of the object type `definition`
    /// (`io.k8s.api.core.v1.PodSpec`, `containers`); `None` when the type
    /// or the field is unknown (then it is patched as a JSON merge patch
    /// would: maps merged, lists replaced).
    fn field(&self, definition: &str, field: &str) -> Option<FieldMeta>;
}
