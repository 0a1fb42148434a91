//! `/openapi/v2` as protobuf: the swagger 2.0 JSON document re-encoded as
//! gnostic's `openapi.v2.Document`, which kubectl fetches
//! (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`)
//! to validate manifests on the client, e.g. every item of a `kind: List`.
//!
//! The mapping follows gnostic's `ParseDocument` (what kube-apiserver's
//! `ToProtoBinary` runs): maps become repeated `Named*` pairs in document
//! order; `type` a `TypeItem`, `items` an `ItemsItem`, `additionalProperties`
//! a schema or a bool; `x-*` keys `NamedAny{name, Any{yaml}}`, and `default`,
//! `enum` and `example` values `Any{yaml}`. The YAML is written in flow style
//! (`[{group: "", kind: "Pod", ...}]` as `[{"group": "", ...}]`), which every
//! YAML parser reads like gnostic's block style. Left out, as unused by the
//! served document: top-level `parameters`/`responses`/`tags`/`externalDocs`,
//! `xml`, `externalDocs` and file schemas, parameters' `items` and numeric
//! limits, response headers and examples, OAuth2 security definitions.
//!
//! Field numbers, read from the `FileDescriptorProto` of
//! `openapiv2/OpenAPIv2.proto` (package `openapi.v2`) embedded in kubectl
//! v1.32.5:
//! - Document: swagger 1, info 2, host 3, base_path 4, schemes 5,
//!   consumes 6, produces 7, paths 8, definitions 9, security 12,
//!   security_definitions 13, vendor_extension 16.
//! - Info: title 1, version 2, description 3, vendor_extension 7.
//! - Any: yaml 2. NamedAny, NamedSchema, NamedPathItem, NamedResponseValue,
//!   NamedStringArray, NamedSecurityDefinitionsItem: name 1, value 2.
//! - Definitions, Properties, SecurityRequirement, SecurityDefinitions:
//!   additional_properties 1. TypeItem, StringArray: value 1. ItemsItem:
//!   schema 1. AdditionalPropertiesItem: schema 1 | boolean 2.
//! - Schema: _ref 1, format 2, title 3, description 4, default 5,
//!   multiple_of 6, maximum 7, exclusive_maximum 8, minimum 9,
//!   exclusive_minimum 10, max_length 11, min_length 12, pattern 13,
//!   max_items 14, min_items 15, unique_items 16, max_properties 17,
//!   min_properties 18, required 19, enum 20, additional_properties 21,
//!   type 22, items 23, all_of 24, properties 25, discriminator 26,
//!   read_only 27, example 30, vendor_extension 31.
//! - Paths: vendor_extension 1, path 2. PathItem: _ref 1, get 2, put 3,
//!   post 4, delete 5, options 6, head 7, patch 8, parameters 9,
//!   vendor_extension 10.
//! - Operation: tags 1, summary 2, description 3, operation_id 5,
//!   produces 6, consumes 7, parameters 8, responses 9, schemes 10,
//!   deprecated 11, vendor_extension 13.
//! - ParametersItem: parameter 1 | json_reference 2. JsonReference: _ref 1,
//!   description 2. Parameter: body_parameter 1 | non_body_parameter 2.
//!   BodyParameter: description 1, name 2, in 3, required 4, schema 5,
//!   vendor_extension 6. NonBodyParameter: header 1 | form_data 2 | query 3
//!   | path 4.
//! - Header/PathParameterSubSchema: required 1, in 2, description 3, name 4,
//!   type 5, format 6, collection_format 8, default 9, pattern 16,
//!   unique_items 19, enum 20, vendor_extension 22.
//! - Query/FormDataParameterSubSchema: required 1, in 2, description 3,
//!   name 4, allow_empty_value 5, type 6, format 7, collection_format 9,
//!   default 10, pattern 17, unique_items 20, enum 21, vendor_extension 23.
//! - Responses: response_code 1, vendor_extension 2. ResponseValue:
//!   response 1 | json_reference 2. Response: description 1, schema 2,
//!   vendor_extension 5. SchemaItem: schema 1.
//! - SecurityDefinitionsItem: basic_authentication_security 1 |
//!   api_key_security 2. ApiKeySecurity: type 1, name 2, in 3,
//!   description 4, vendor_extension 5. BasicAuthenticationSecurity: type 1,
//!   description 2, vendor_extension 3.
//!
//! Oneofs are written as plain optional fields: only one is ever set, so
//! the bytes are the same.

use prost::Message;
use serde_json::{Map, Value};

use super::OpenApiError;

/// Re-encodes the `/openapi/v2` JSON document as an `openapi.v2.Document`.
/// Takes the JSON by value so it is freed before the message is encoded.
pub(super) fn encode(json: Vec<u8>) -> Result<Vec<u8>, OpenApiError> {
    let value: Value = serde_json::from_slice(&json).map_err(OpenApiError::Serialize)?;
    drop(json);
    let message = document(value);
    Ok(message.encode_to_vec())
}

#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(string, tag = "3")]
    host: String,
    #[prost(string, tag = "4")]
    base_path: String,
    #[prost(string, repeated, tag = "5")]
    schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "12")]
    security: Vec<SecurityRequirement>,
    #[prost(message, optional, tag = "13")]
    security_definitions: Option<SecurityDefinitions>,
    #[prost(message, repeated, tag = "16")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(message, repeated, tag = "7")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Schema {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "3")]
    title: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(message, optional, tag = "5")]
    default: Option<Any>,
    #[prost(double, tag = "6")]
    multiple_of: f64,
    #[prost(double, tag = "7")]
    maximum: f64,
    #[prost(bool, tag = "8")]
    exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    minimum: f64,
    #[prost(bool, tag = "10")]
    exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    max_length: i64,
    #[prost(int64, tag = "12")]
    min_length: i64,
    #[prost(string, tag = "13")]
    pattern: String,
    #[prost(int64, tag = "14")]
    max_items: i64,
    #[prost(int64, tag = "15")]
    min_items: i64,
    #[prost(bool, tag = "16")]
    unique_items: bool,
    #[prost(int64, tag = "17")]
    max_properties: i64,
    #[prost(int64, tag = "18")]
    min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, optional, tag = "21")]
    additional_properties: Option<AdditionalPropertiesItem>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(string, tag = "26")]
    discriminator: String,
    #[prost(bool, tag = "27")]
    read_only: bool,
    #[prost(message, optional, tag = "30")]
    example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

/// A oneof upstream: `schema` or `boolean`.
#[derive(Clone, PartialEq, Message)]
struct AdditionalPropertiesItem {
    #[prost(message, optional, boxed, tag = "1")]
    schema: Option<Box<Schema>>,
    #[prost(bool, optional, tag = "2")]
    boolean: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "1")]
    vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, repeated, tag = "1")]
    tags: Vec<String>,
    #[prost(string, tag = "2")]
    summary: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(string, repeated, tag = "6")]
    produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    deprecated: bool,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// A oneof upstream: `parameter` or `json_reference`.
#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
    #[prost(message, optional, tag = "2")]
    json_reference: Option<JsonReference>,
}

#[derive(Clone, PartialEq, Message)]
struct JsonReference {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, tag = "2")]
    description: String,
}

/// A oneof upstream: `body_parameter` or `non_body_parameter`.
#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(message, optional, tag = "1")]
    body_parameter: Option<BodyParameter>,
    #[prost(message, optional, tag = "2")]
    non_body_parameter: Option<NonBodyParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct BodyParameter {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(bool, tag = "4")]
    required: bool,
    #[prost(message, optional, tag = "5")]
    schema: Option<Schema>,
    #[prost(message, repeated, tag = "6")]
    vendor_extension: Vec<NamedAny>,
}

/// A oneof upstream, by `in`.
#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "1")]
    header_parameter_sub_schema: Option<PathParameter>,
    #[prost(message, optional, tag = "2")]
    form_data_parameter_sub_schema: Option<QueryParameter>,
    #[prost(message, optional, tag = "3")]
    query_parameter_sub_schema: Option<QueryParameter>,
    #[prost(message, optional, tag = "4")]
    path_parameter_sub_schema: Option<PathParameter>,
}

/// `PathParameterSubSchema`; `HeaderParameterSubSchema` has the same numbers.
#[derive(Clone, PartialEq, Message)]
struct PathParameter {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "5")]
    r#type: String,
    #[prost(string, tag = "6")]
    format: String,
    #[prost(string, tag = "8")]
    collection_format: String,
    #[prost(message, optional, tag = "9")]
    default: Option<Any>,
    #[prost(string, tag = "16")]
    pattern: String,
    #[prost(bool, tag = "19")]
    unique_items: bool,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "22")]
    vendor_extension: Vec<NamedAny>,
}

/// `QueryParameterSubSchema`; `FormDataParameterSubSchema` has the same
/// numbers.
#[derive(Clone, PartialEq, Message)]
struct QueryParameter {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(bool, tag = "5")]
    allow_empty_value: bool,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(string, tag = "7")]
    format: String,
    #[prost(string, tag = "9")]
    collection_format: String,
    #[prost(message, optional, tag = "10")]
    default: Option<Any>,
    #[prost(string, tag = "17")]
    pattern: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
    #[prost(message, repeated, tag = "21")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "23")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
    #[prost(message, repeated, tag = "2")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

/// A oneof upstream: `response` or `json_reference`.
#[derive(Clone, PartialEq, Message)]
struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    response: Option<Response>,
    #[prost(message, optional, tag = "2")]
    json_reference: Option<JsonReference>,
}

#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<SchemaItem>,
    #[prost(message, repeated, tag = "5")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    schema: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct SecurityRequirement {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedStringArray>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedStringArray {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<StringArray>,
}

#[derive(Clone, PartialEq, Message)]
struct StringArray {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct SecurityDefinitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSecurityDefinitionsItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSecurityDefinitionsItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<SecurityDefinitionsItem>,
}

/// A oneof upstream; the OAuth2 kinds (3-6) are not written.
#[derive(Clone, PartialEq, Message)]
struct SecurityDefinitionsItem {
    #[prost(message, optional, tag = "1")]
    basic_authentication_security: Option<BasicAuthenticationSecurity>,
    #[prost(message, optional, tag = "2")]
    api_key_security: Option<ApiKeySecurity>,
}

#[derive(Clone, PartialEq, Message)]
struct ApiKeySecurity {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(message, repeated, tag = "5")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct BasicAuthenticationSecurity {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(string, tag = "2")]
    description: String,
    #[prost(message, repeated, tag = "3")]
    vendor_extension: Vec<NamedAny>,
}

// ---- JSON -> messages -------------------------------------------------

fn document(value: Value) -> Document {
    let mut out = Document::default();
    for (key, value) in object(value) {
        match key.as_str() {
            "swagger" => out.swagger = string(value),
            "info" => out.info = Some(info(value)),
            "host" => out.host = string(value),
            "basePath" => out.base_path = string(value),
            "schemes" => out.schemes = strings(value),
            "consumes" => out.consumes = strings(value),
            "produces" => out.produces = strings(value),
            "paths" => out.paths = Some(paths(value)),
            "definitions" => {
                out.definitions = Some(Definitions {
                    additional_properties: named_schemas(value),
                });
            }
            "security" => out.security = array(value).map(security_requirement).collect(),
            "securityDefinitions" => {
                out.security_definitions = Some(security_definitions(value));
            }
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn info(value: Value) -> Info {
    let mut out = Info::default();
    for (key, value) in object(value) {
        match key.as_str() {
            "title" => out.title = string(value),
            "version" => out.version = string(value),
            "description" => out.description = string(value),
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn named_schemas(value: Value) -> Vec<NamedSchema> {
    object(value)
        .into_iter()
        .map(|(name, value)| NamedSchema {
            name,
            value: Some(schema(value)),
        })
        .collect()
}

fn schema(value: Value) -> Schema {
    let mut out = Schema::default();
    for (key, value) in object(value) {
        match key.as_str() {
            "$ref" => out.r#ref = string(value),
            "format" => out.format = string(value),
            "title" => out.title = string(value),
            "description" => out.description = string(value),
            "default" => out.default = Some(any(&value)),
            "multipleOf" => out.multiple_of = number(&value),
            "maximum" => out.maximum = number(&value),
            "exclusiveMaximum" => out.exclusive_maximum = boolean(&value),
            "minimum" => out.minimum = number(&value),
            "exclusiveMinimum" => out.exclusive_minimum = boolean(&value),
            "maxLength" => out.max_length = integer(&value),
            "minLength" => out.min_length = integer(&value),
            "pattern" => out.pattern = string(value),
            "maxItems" => out.max_items = integer(&value),
            "minItems" => out.min_items = integer(&value),
            "uniqueItems" => out.unique_items = boolean(&value),
            "maxProperties" => out.max_properties = integer(&value),
            "minProperties" => out.min_properties = integer(&value),
            "required" => out.required = strings(value),
            "enum" => out.r#enum = array(value).map(|v| any(&v)).collect(),
            "additionalProperties" => {
                out.additional_properties = Some(match value {
                    Value::Bool(allowed) => AdditionalPropertiesItem {
                        schema: None,
                        boolean: Some(allowed),
                    },
                    other => AdditionalPropertiesItem {
                        schema: Some(Box::new(schema(other))),
                        boolean: None,
                    },
                });
            }
            "type" => {
                out.r#type = Some(TypeItem {
                    value: strings(value),
                });
            }
            "items" => {
                let schemas = match value {
                    Value::Array(items) => items.into_iter().map(schema).collect(),
                    one => vec![schema(one)],
                };
                out.items = Some(ItemsItem { schema: schemas });
            }
            "allOf" => out.all_of = array(value).map(schema).collect(),
            "properties" => {
                out.properties = Some(Properties {
                    additional_properties: named_schemas(value),
                });
            }
            "discriminator" => out.discriminator = string(value),
            "readOnly" => out.read_only = boolean(&value),
            "example" => out.example = Some(any(&value)),
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn paths(value: Value) -> Paths {
    let mut out = Paths::default();
    for (key, value) in object(value) {
        if key.starts_with('/') {
            out.path.push(NamedPathItem {
                name: key,
                value: Some(path_item(value)),
            });
        } else {
            extension(&mut out.vendor_extension, key, &value);
        }
    }
    out
}

fn path_item(value: Value) -> PathItem {
    let mut out = PathItem::default();
    for (key, value) in object(value) {
        let slot = match key.as_str() {
            "$ref" => {
                out.r#ref = string(value);
                continue;
            }
            "parameters" => {
                out.parameters = array(value).map(parameters_item).collect();
                continue;
            }
            "get" => &mut out.get,
            "put" => &mut out.put,
            "post" => &mut out.post,
            "delete" => &mut out.delete,
            "options" => &mut out.options,
            "head" => &mut out.head,
            "patch" => &mut out.patch,
            _ => {
                extension(&mut out.vendor_extension, key, &value);
                continue;
            }
        };
        *slot = Some(operation(value));
    }
    out
}

fn operation(value: Value) -> Operation {
    let mut out = Operation::default();
    for (key, value) in object(value) {
        match key.as_str() {
            "tags" => out.tags = strings(value),
            "summary" => out.summary = string(value),
            "description" => out.description = string(value),
            "operationId" => out.operation_id = string(value),
            "produces" => out.produces = strings(value),
            "consumes" => out.consumes = strings(value),
            "parameters" => out.parameters = array(value).map(parameters_item).collect(),
            "responses" => out.responses = Some(responses(value)),
            "schemes" => out.schemes = strings(value),
            "deprecated" => out.deprecated = boolean(&value),
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn parameters_item(value: Value) -> ParametersItem {
    let mut map = object(value);
    if let Some(reference) = map.remove("$ref") {
        return ParametersItem {
            parameter: None,
            json_reference: Some(json_reference(reference, map)),
        };
    }
    let location = map.get("in").and_then(Value::as_str).unwrap_or_default();
    let mut non_body = NonBodyParameter::default();
    match location {
        "body" => {
            return ParametersItem {
                parameter: Some(Parameter {
                    body_parameter: Some(body_parameter(map)),
                    non_body_parameter: None,
                }),
                json_reference: None,
            };
        }
        "query" => non_body.query_parameter_sub_schema = Some(query_parameter(map)),
        "formData" => non_body.form_data_parameter_sub_schema = Some(query_parameter(map)),
        "header" => non_body.header_parameter_sub_schema = Some(path_parameter(map)),
        _ => non_body.path_parameter_sub_schema = Some(path_parameter(map)),
    }
    let parameter = Parameter {
        body_parameter: None,
        non_body_parameter: Some(non_body),
    };
    ParametersItem {
        parameter: Some(parameter),
        json_reference: None,
    }
}

fn json_reference(reference: Value, mut rest: Map<String, Value>) -> JsonReference {
    JsonReference {
        r#ref: string(reference),
        description: rest.remove("description").map(string).unwrap_or_default(),
    }
}

fn body_parameter(map: Map<String, Value>) -> BodyParameter {
    let mut out = BodyParameter::default();
    for (key, value) in map {
        match key.as_str() {
            "description" => out.description = string(value),
            "name" => out.name = string(value),
            "in" => out.r#in = string(value),
            "required" => out.required = boolean(&value),
            "schema" => out.schema = Some(schema(value)),
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn path_parameter(map: Map<String, Value>) -> PathParameter {
    let mut out = PathParameter::default();
    for (key, value) in map {
        match key.as_str() {
            "required" => out.required = boolean(&value),
            "in" => out.r#in = string(value),
            "description" => out.description = string(value),
            "name" => out.name = string(value),
            "type" => out.r#type = string(value),
            "format" => out.format = string(value),
            "collectionFormat" => out.collection_format = string(value),
            "default" => out.default = Some(any(&value)),
            "pattern" => out.pattern = string(value),
            "uniqueItems" => out.unique_items = boolean(&value),
            "enum" => out.r#enum = array(value).map(|v| any(&v)).collect(),
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn query_parameter(map: Map<String, Value>) -> QueryParameter {
    let mut out = QueryParameter::default();
    for (key, value) in map {
        match key.as_str() {
            "required" => out.required = boolean(&value),
            "in" => out.r#in = string(value),
            "description" => out.description = string(value),
            "name" => out.name = string(value),
            "allowEmptyValue" => out.allow_empty_value = boolean(&value),
            "type" => out.r#type = string(value),
            "format" => out.format = string(value),
            "collectionFormat" => out.collection_format = string(value),
            "default" => out.default = Some(any(&value)),
            "pattern" => out.pattern = string(value),
            "uniqueItems" => out.unique_items = boolean(&value),
            "enum" => out.r#enum = array(value).map(|v| any(&v)).collect(),
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn responses(value: Value) -> Responses {
    let mut out = Responses::default();
    for (key, value) in object(value) {
        if key.starts_with("x-") {
            extension(&mut out.vendor_extension, key, &value);
            continue;
        }
        let mut map = object(value);
        let value = match map.remove("$ref") {
            Some(reference) => ResponseValue {
                response: None,
                json_reference: Some(json_reference(reference, map)),
            },
            None => ResponseValue {
                response: Some(response(map)),
                json_reference: None,
            },
        };
        out.response_code.push(NamedResponseValue {
            name: key,
            value: Some(value),
        });
    }
    out
}

fn response(map: Map<String, Value>) -> Response {
    let mut out = Response::default();
    for (key, value) in map {
        match key.as_str() {
            "description" => out.description = string(value),
            "schema" => {
                out.schema = Some(SchemaItem {
                    schema: Some(schema(value)),
                });
            }
            _ => extension(&mut out.vendor_extension, key, &value),
        }
    }
    out
}

fn security_requirement(value: Value) -> SecurityRequirement {
    SecurityRequirement {
        additional_properties: object(value)
            .into_iter()
            .map(|(name, scopes)| NamedStringArray {
                name,
                value: Some(StringArray {
                    value: strings(scopes),
                }),
            })
            .collect(),
    }
}

fn security_definitions(value: Value) -> SecurityDefinitions {
    let mut out = SecurityDefinitions::default();
    for (name, definition) in object(value) {
        let map = object(definition);
        let item = match map.get("type").and_then(Value::as_str) {
            Some("apiKey") => {
                let mut key = ApiKeySecurity::default();
                for (field, value) in map {
                    match field.as_str() {
                        "type" => key.r#type = string(value),
                        "name" => key.name = string(value),
                        "in" => key.r#in = string(value),
                        "description" => key.description = string(value),
                        _ => extension(&mut key.vendor_extension, field, &value),
                    }
                }
                SecurityDefinitionsItem {
                    basic_authentication_security: None,
                    api_key_security: Some(key),
                }
            }
            Some("basic") => {
                let mut basic = BasicAuthenticationSecurity::default();
                for (field, value) in map {
                    match field.as_str() {
                        "type" => basic.r#type = string(value),
                        "description" => basic.description = string(value),
                        _ => extension(&mut basic.vendor_extension, field, &value),
                    }
                }
                SecurityDefinitionsItem {
                    basic_authentication_security: Some(basic),
                    api_key_security: None,
                }
            }
            _ => continue,
        };
        out.additional_properties
            .push(NamedSecurityDefinitionsItem {
                name,
                value: Some(item),
            });
    }
    out
}

// ---- values -----------------------------------------------------------

/// Adds `key` as a vendor extension when it is one (`x-*`); other unknown
/// keys are dropped, as they have no field.
fn extension(out: &mut Vec<NamedAny>, key: String, value: &Value) {
    if key.starts_with("x-") {
        out.push(NamedAny {
            name: key,
            value: Some(any(value)),
        });
    }
}

fn any(value: &Value) -> Any {
    let mut yaml = String::new();
    write_yaml(value, &mut yaml);
    Any { yaml }
}

/// `value` as flow-style YAML: JSON with a space after every `:` and `,`
/// (so YAML 1.1 parsers such as Go's yaml.v2 read it too).
fn write_yaml(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_yaml(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn array(value: Value) -> impl Iterator<Item = Value> {
    match value {
        Value::Array(items) => items.into_iter(),
        _ => Vec::new().into_iter(),
    }
}

fn string(value: Value) -> String {
    match value {
        Value::String(s) => s,
        _ => String::new(),
    }
}

/// A string list; a single string (`"type": "object"`) is a list of one.
fn strings(value: Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s],
        other => array(other).map(string).collect(),
    }
}

fn boolean(value: &Value) -> bool {
    value.as_bool().unwrap_or(false)
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

fn integer(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn encode_json(value: Value) -> Vec<u8> {
        encode(serde_json::to_vec(&value).unwrap()).unwrap()
    }

    /// The bytes of a tiny document, written out by hand from the numbers
    /// in kubectl's descriptor (not from the structs above).
    #[test]
    fn field_numbers_match_the_descriptor() {
        let bytes = encode_json(json!({
            "swagger": "2.0",
            "definitions": { "A": { "type": "string", "x-k": "v" } },
        }));
        let any = [&[0x12, 0x03][..], b"\"v\""].concat(); // Any.yaml = 2
        let named_any = [&[0x0a, 0x03][..], b"x-k", &[0x12, any.len() as u8], &any].concat();
        let type_item = [&[0x0a, 0x06][..], b"string"].concat(); // TypeItem.value = 1
        let schema = [
            &[0xb2, 0x01, type_item.len() as u8][..], // Schema.type = 22
            &type_item,
            &[0xfa, 0x01, named_any.len() as u8], // Schema.vendor_extension = 31
            &named_any,
        ]
        .concat();
        let named_schema = [
            &[0x0a, 0x01][..],
            b"A",
            &[0x12, schema.len() as u8],
            &schema,
        ]
        .concat();
        let definitions = [&[0x0a, named_schema.len() as u8][..], &named_schema].concat();
        let expected = [
            &[0x0a, 0x03][..], // Document.swagger = 1
            b"2.0",
            &[0x4a, definitions.len() as u8], // Document.definitions = 9
            &definitions,
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn schema_features_round_trip() {
        let bytes = encode_json(json!({
            "definitions": { "io.example.v1.Thing": {
                "description": "A thing.",
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "spec": { "$ref": "#/definitions/io.example.v1.Spec", "description": "Spec." },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                    "raw": { "type": "object", "additionalProperties": true },
                    "ports": {
                        "type": "array",
                        "items": { "type": "integer", "format": "int32" },
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port", "protocol"],
                        "x-kubernetes-patch-merge-key": "port",
                    },
                    "mode": { "type": "string", "enum": ["A", "B"], "default": "A", "maxLength": 3 },
                    "port": { "x-kubernetes-int-or-string": true },
                },
                "x-kubernetes-group-version-kind": [{ "group": "example.io", "kind": "Thing", "version": "v1" }],
            } },
        }));
        let document = Document::decode(bytes.as_slice()).unwrap();
        let named = &document.definitions.unwrap().additional_properties[0];
        assert_eq!(named.name, "io.example.v1.Thing");
        let thing = named.value.as_ref().unwrap();
        assert_eq!(thing.description, "A thing.");
        assert_eq!(thing.r#type.as_ref().unwrap().value, ["object"]);
        assert_eq!(thing.required, ["spec"]);
        let gvk = &thing.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        assert_eq!(
            gvk.value.as_ref().unwrap().yaml,
            r#"[{"group": "example.io", "kind": "Thing", "version": "v1"}]"#
        );
        let field = |name: &str| {
            let properties = &thing.properties.as_ref().unwrap().additional_properties;
            properties
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .value
                .clone()
                .unwrap()
        };
        assert_eq!(field("spec").r#ref, "#/definitions/io.example.v1.Spec");
        assert_eq!(field("spec").description, "Spec.");
        let labels = field("labels").additional_properties.unwrap();
        assert_eq!(labels.schema.unwrap().r#type.unwrap().value, ["string"]);
        let raw = field("raw").additional_properties.unwrap();
        assert_eq!((raw.schema, raw.boolean), (None, Some(true)));
        let ports = field("ports");
        assert_eq!(ports.items.unwrap().schema[0].format, "int32");
        let extensions: Vec<(&str, &str)> = ports
            .vendor_extension
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_ref().unwrap().yaml.as_str()))
            .collect();
        assert_eq!(
            extensions,
            [
                ("x-kubernetes-list-map-keys", "[\"port\", \"protocol\"]"),
                ("x-kubernetes-list-type", "\"map\""),
                ("x-kubernetes-patch-merge-key", "\"port\""),
            ]
        );
        let mode = field("mode");
        let values: Vec<&str> = mode.r#enum.iter().map(|a| a.yaml.as_str()).collect();
        assert_eq!(values, ["\"A\"", "\"B\""]);
        assert_eq!(mode.default.unwrap().yaml, "\"A\"");
        assert_eq!(mode.max_length, 3);
        assert_eq!(
            field("port").vendor_extension[0]
                .value
                .as_ref()
                .unwrap()
                .yaml,
            "true"
        );
    }

    #[test]
    fn paths_parameters_responses_and_security_are_written() {
        let bytes = encode_json(json!({
            "swagger": "2.0",
            "info": { "title": "Kubernetes", "version": "v1.32.0" },
            "paths": { "/api/v1/namespaces/{namespace}/configmaps": {
                "parameters": [
                    { "name": "namespace", "in": "path", "required": true, "type": "string", "uniqueItems": true },
                    { "name": "pretty", "in": "query", "type": "string", "uniqueItems": true },
                ],
                "post": {
                    "operationId": "createCoreV1NamespacedConfigMap",
                    "consumes": ["*/*"],
                    "parameters": [{ "name": "body", "in": "body", "required": true,
                                     "schema": { "$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap" } }],
                    "responses": {
                        "201": { "description": "Created",
                                 "schema": { "$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap" } },
                        "401": { "description": "Unauthorized" },
                    },
                    "x-kubernetes-action": "post",
                },
            } },
            "securityDefinitions": { "BearerToken": {
                "description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey",
            } },
            "security": [{ "BearerToken": [] }],
        }));
        let document = Document::decode(bytes.as_slice()).unwrap();
        let info = document.info.unwrap();
        assert_eq!(
            (info.title.as_str(), info.version.as_str()),
            ("Kubernetes", "v1.32.0")
        );
        let path = &document.paths.unwrap().path[0];
        assert_eq!(path.name, "/api/v1/namespaces/{namespace}/configmaps");
        let item = path.value.clone().unwrap();
        let non_body = |i: usize| {
            item.parameters[i]
                .parameter
                .clone()
                .unwrap()
                .non_body_parameter
                .unwrap()
        };
        let namespace = non_body(0).path_parameter_sub_schema.unwrap();
        assert!(namespace.required && namespace.unique_items);
        assert_eq!(
            (namespace.name.as_str(), namespace.r#type.as_str()),
            ("namespace", "string")
        );
        assert_eq!(
            non_body(1).query_parameter_sub_schema.unwrap().name,
            "pretty"
        );
        let post = item.post.unwrap();
        assert_eq!(post.operation_id, "createCoreV1NamespacedConfigMap");
        assert_eq!(post.consumes, ["*/*"]);
        let body = post.parameters[0]
            .parameter
            .clone()
            .unwrap()
            .body_parameter
            .unwrap();
        assert_eq!(
            body.schema.unwrap().r#ref,
            "#/definitions/io.k8s.api.core.v1.ConfigMap"
        );
        let codes: Vec<&str> = post
            .responses
            .as_ref()
            .unwrap()
            .response_code
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(codes, ["201", "401"]);
        assert_eq!(
            post.vendor_extension[0].value.as_ref().unwrap().yaml,
            "\"post\""
        );
        let security = &document.security_definitions.unwrap().additional_properties[0];
        let key = security.value.clone().unwrap().api_key_security.unwrap();
        assert_eq!(
            (key.name.as_str(), key.r#in.as_str()),
            ("authorization", "header")
        );
        assert_eq!(
            document.security[0].additional_properties[0].name,
            "BearerToken"
        );
    }

    /// The served document: every definition, with ConfigMap's GVK.
    #[test]
    fn the_served_document_has_every_definition() {
        let openapi = super::super::OpenApi::load().unwrap();
        let bytes = openapi.v2_protobuf(&[], &[]).unwrap();
        let document = Document::decode(bytes.as_slice()).unwrap();
        assert_eq!(document.swagger, "2.0");
        let definitions = document.definitions.unwrap().additional_properties;
        assert!(definitions.len() > 600, "{}", definitions.len());
        let config_map = definitions
            .iter()
            .find(|d| d.name == "io.k8s.api.core.v1.ConfigMap")
            .and_then(|d| d.value.as_ref())
            .unwrap();
        let gvk = config_map
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .unwrap();
        let gvk: Value = serde_json::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(
            gvk,
            json!([{ "group": "", "kind": "ConfigMap", "version": "v1" }])
        );
        let data = config_map
            .properties
            .as_ref()
            .unwrap()
            .additional_properties
            .iter();
        let data = data
            .clone()
            .find(|p| p.name == "data")
            .unwrap()
            .value
            .clone()
            .unwrap();
        let values = data.additional_properties.unwrap().schema.unwrap();
        assert_eq!(values.r#type.unwrap().value, ["string"]);
    }
}
