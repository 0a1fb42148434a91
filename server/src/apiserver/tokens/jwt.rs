//! JSON Web Signatures in compact form (`header.payload.signature`, each
//! base64url without padding), as go-jose writes the tokens kube-apiserver
//! issues: header `{"alg":"ES256","kid":"..."}`, claims with sorted keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::key::{KeyError, SigningKey};

/// Signs `claims` into a compact JWS.
pub fn sign(key: &SigningKey, claims: &Value) -> Result<String, KeyError> {
    let header = json!({ "alg": key.algorithm(), "kid": key.key_id() });
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug, Clone, PartialEq)]
pub struct Jws<'a> {
    /// The header's `alg`.
    pub algorithm: String,
    /// The payload, a JSON object.
    pub claims: Value,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Parses `token`; `None` when it is not a compact JWS with a JSON object
/// payload (an opaque token some other authenticator may know).
pub fn parse(token: &str) -> Option<Jws<'_>> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    if !claims.is_object() {
        return None;
    }
    Some(Jws {
        algorithm: header["alg"].as_str()?.to_owned(),
        claims,
        signing_input: &token[..token.len() - signature.len() - 1],
        signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
    })
}

impl Jws<'_> {
    /// Whether `key` signed it.
    pub fn verified_by(&self, key: &SigningKey) -> bool {
        key.verify(
            &self.algorithm,
            self.signing_input.as_bytes(),
            &self.signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pem(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap()
    }

    #[test]
    fn signed_tokens_parse_back_and_verify_with_their_key_only() {
        let key = key();
        let claims = json!({ "iss": "https://kubernetes.default.svc.cluster.local", "sub": "x" });
        let token = sign(&key, &claims).unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header, json!({ "alg": "ES256", "kid": key.key_id() }));
        let jws = parse(&token).unwrap();
        assert_eq!(jws.algorithm, "ES256");
        assert_eq!(jws.claims, claims);
        assert!(jws.verified_by(&key));
        assert!(!jws.verified_by(&self::key()));
    }

    #[test]
    fn a_changed_payload_or_algorithm_fails_verification() {
        let key = key();
        let token = sign(&key, &json!({ "sub": "a" })).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(json!({ "sub": "b" }).to_string()),
            parts[2]
        );
        assert!(!parse(&forged).unwrap().verified_by(&key));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(!parse(&none).unwrap().verified_by(&key));
    }

    #[test]
    fn opaque_tokens_are_not_jws() {
        assert!(parse("abcdef.0123456789abcdef").is_none());
        assert!(parse("not-a-jwt").is_none());
        assert!(parse("a.b.c.d").is_none());
        let array = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode("[1]")
        );
        assert!(parse(&array).is_none());
    }
}
