//! OpenID Connect discovery for the service-account issuer
//! (kube-apiserver's ServiceAccountIssuerDiscovery): the configuration and
//! the public keys, so other parties can verify the tokens.

use serde_json::{Value, json};

use super::Tokens;

/// Where the configuration is served.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Where the public keys are served.
pub const JWKS_PATH: &str = "/openid/v1/jwks";

impl Tokens {
    /// `/.well-known/openid-configuration`; the keys' URL is on the
    /// apiserver's address (`server_address`, `host:port`), as
    /// kube-apiserver derives it without `--service-account-jwks-uri`.
    pub fn openid_configuration(&self, server_address: &str) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("https://{server_address}{JWKS_PATH}"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.key.algorithm()],
        })
    }

    /// `/openid/v1/jwks`: the public key as a JWK set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.key.jwk()] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_name_the_issuer_and_its_key() {
        let tokens = Tokens::new(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let config = tokens.openid_configuration("127.0.0.1:6443");
        assert_eq!(config["issuer"], super::super::ISSUER);
        assert_eq!(config["jwks_uri"], "https://127.0.0.1:6443/openid/v1/jwks");
        assert_eq!(
            config["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        let jwks = tokens.jwks();
        assert_eq!(jwks["keys"][0]["kid"], tokens.key.key_id());
        assert_eq!(jwks["keys"][0]["use"], "sig");
    }
}
