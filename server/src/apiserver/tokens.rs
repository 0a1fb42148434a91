//! Service-account tokens, as kube-apiserver issues and accepts them: JWTs
//! signed with the cluster's `service.key`, made by the TokenRequest API
//! (`POST .../serviceaccounts/<name>/token`, what `kubectl create token`
//! and the kubelet's projected volumes ask for), accepted as
//! `Authorization: Bearer` credentials, and published for other verifiers
//! at `/.well-known/openid-configuration` and `/openid/v1/jwks`.
//!
//! # Layout
//!
//! - `key`: the signing key (ES256, or RS256 for an RSA key), its key ID
//!   and JWK.
//! - `jwt`: compact JWS signing and parsing.
//! - `claims`: the claims written and checked (times, audiences, whom for).
//! - `request`: the TokenRequest subresource.
//! - `authenticate`: a bearer token to a user, with the bound objects
//!   checked in the store and successes cached for ten seconds.
//! - `discovery`: the OpenID discovery documents.

mod authenticate;
mod claims;
mod discovery;
mod jwt;
mod key;
mod request;

use std::collections::HashMap;
use std::sync::Mutex;

pub use authenticate::Verdict;
pub use claims::ISSUER;
pub use discovery::{JWKS_PATH, OPENID_CONFIGURATION_PATH};
pub use key::KeyError;
pub use request::create as create_token;

use super::auth::User;
use key::SigningKey;

/// The token issuer and verifier of one apiserver.
pub struct Tokens {
    key: SigningKey,
    issuer: String,
    audiences: Vec<String>,
    cache: Mutex<HashMap<[u8; 32], authenticate::Cached>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("key", &self.key)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed with the PEM key `key_pem`, issued by [`ISSUER`] for
    /// the API's audience (the issuer).
    pub fn new(key_pem: &str) -> Result<Self, KeyError> {
        Ok(Self {
            key: SigningKey::from_pem(key_pem)?,
            issuer: ISSUER.to_owned(),
            audiences: vec![ISSUER.to_owned()],
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences the API accepts, and the default of a TokenRequest.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The user of a cached token, if it authenticated recently.
    pub fn cached(&self, token: &str) -> Option<User> {
        authenticate::cached(self, token)
    }
}
