//! The service-account signing key: ES256 for the ECDSA P-256 key Skiff
//! makes, RS256 for an RSA key (k3s's `service.key`), its key ID as
//! kube-apiserver derives it, and its public half as a JWK.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Why the key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file holds no private key PEM.
    #[error("the service-account key is not a PEM private key: {0}")]
    Pem(String),
    /// The key is neither ECDSA P-256 nor RSA.
    #[error("the service-account key is neither ECDSA P-256 nor RSA ({0})")]
    Unsupported(String),
    /// Signing failed.
    #[error("signing a service-account token failed")]
    Sign,
}

/// The private key tokens are signed with.
pub struct SigningKey {
    kind: Kind,
    key_id: String,
    rng: SystemRandom,
}

enum Kind {
    Ecdsa {
        pair: EcdsaKeyPair,
        /// The uncompressed point (0x04 || x || y).
        public: Vec<u8>,
    },
    Rsa {
        pair: RsaKeyPair,
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PEM key: PKCS#8 (ECDSA P-256 or RSA), PKCS#1 RSA, or SEC1
    /// ECDSA P-256.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| KeyError::Pem(e.to_string()))?;
        let rng = SystemRandom::new();
        let kind = match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => ecdsa(pkcs8.secret_pkcs8_der(), &rng)
                .or_else(|_| RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()).map(rsa))
                .map_err(|e| KeyError::Unsupported(e.to_string()))?,
            PrivateKeyDer::Pkcs1(pkcs1) => RsaKeyPair::from_der(pkcs1.secret_pkcs1_der())
                .map(rsa)
                .map_err(|e| KeyError::Unsupported(e.to_string()))?,
            PrivateKeyDer::Sec1(sec1) => ecdsa(&sec1_to_pkcs8(sec1.secret_sec1_der()), &rng)
                .map_err(|e| KeyError::Unsupported(e.to_string()))?,
            _ => return Err(KeyError::Unsupported("unknown PEM label".into())),
        };
        let key_id = URL_SAFE_NO_PAD.encode(Sha256::digest(subject_public_key_info(&kind)));
        Ok(Self { kind, key_id, rng })
    }

    /// The JWS algorithm: `ES256` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            Kind::Ecdsa { .. } => "ES256",
            Kind::Rsa { .. } => "RS256",
        }
    }

    /// The key ID (`kid`): base64url of the SHA-256 of the public key's
    /// DER SubjectPublicKeyInfo, as kube-apiserver computes it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `message` (a JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.kind {
            Kind::Ecdsa { pair, .. } => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Kind::Rsa { pair, .. } => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    message,
                    &mut signature,
                )
                .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
        }
    }

    /// Whether `signature` over `message` was made by this key with
    /// `algorithm`.
    pub fn verify(&self, algorithm: &str, message: &[u8], signature: &[u8]) -> bool {
        if algorithm != self.algorithm() {
            return false;
        }
        match &self.kind {
            Kind::Ecdsa { public, .. } => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public)
                    .verify(message, signature)
                    .is_ok()
            }
            Kind::Rsa { n, e, .. } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }

    /// The public key as a JWK (`/openid/v1/jwks`).
    pub fn jwk(&self) -> Value {
        match &self.kind {
            Kind::Ecdsa { public, .. } => json!({
                "use": "sig",
                "kty": "EC",
                "kid": self.key_id,
                "crv": "P-256",
                "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
            }),
            Kind::Rsa { n, e, .. } => json!({
                "use": "sig",
                "kty": "RSA",
                "kid": self.key_id,
                "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(n),
                "e": URL_SAFE_NO_PAD.encode(e),
            }),
        }
    }
}

fn ecdsa(pkcs8: &[u8], rng: &SystemRandom) -> Result<Kind, ring::error::KeyRejected> {
    let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, rng)?;
    let public = pair.public_key().as_ref().to_vec();
    Ok(Kind::Ecdsa { pair, public })
}

fn rsa(pair: RsaKeyPair) -> Kind {
    let components: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    Kind::Rsa {
        pair,
        n: components.n,
        e: components.e,
    }
}

/// OID 1.2.840.10045.2.1 (id-ecPublicKey), DER.
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// OID 1.2.840.10045.3.1.7 (prime256v1), DER.
const PRIME256V1: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// OID 1.2.840.113549.1.1.1 (rsaEncryption) and NULL parameters, DER.
const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// The DER SubjectPublicKeyInfo of the public key.
fn subject_public_key_info(kind: &Kind) -> Vec<u8> {
    let (algorithm, key) = match kind {
        Kind::Ecdsa { public, .. } => ([EC_PUBLIC_KEY, PRIME256V1].concat(), public.clone()),
        Kind::Rsa { pair, .. } => (RSA_ENCRYPTION.to_vec(), pair.public().as_ref().to_vec()),
    };
    let mut bits = vec![0u8];
    bits.extend_from_slice(&key);
    der(0x30, &[der(0x30, &algorithm), der(0x03, &bits)].concat())
}

/// A SEC1 `ECPrivateKey` wrapped as the PKCS#8 ring reads.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let algorithm = der(0x30, &[EC_PUBLIC_KEY, PRIME256V1].concat());
    der(
        0x30,
        &[&[0x02, 0x01, 0x00][..], &algorithm, &der(0x04, sec1)].concat(),
    )
}

/// One DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec_key() -> SigningKey {
        SigningKey::from_pem(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap()
    }

    #[test]
    fn ecdsa_keys_sign_es256_and_verify_their_own_signatures_only() {
        let key = ec_key();
        assert_eq!(key.algorithm(), "ES256");
        let signature = key.sign(b"header.payload").unwrap();
        assert_eq!(signature.len(), 64);
        assert!(key.verify("ES256", b"header.payload", &signature));
        assert!(!key.verify("ES256", b"header.payload2", &signature));
        assert!(!key.verify("RS256", b"header.payload", &signature));
        assert!(!key.verify("none", b"header.payload", &[]));
        let other = ec_key();
        assert!(!other.verify("ES256", b"header.payload", &signature));
        assert_ne!(key.key_id(), other.key_id());
    }

    #[test]
    fn the_key_id_hashes_the_subject_public_key_info_as_x509_encodes_it() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let key = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&pair);
        assert_eq!(key.key_id(), URL_SAFE_NO_PAD.encode(Sha256::digest(&spki)));
        let jwk = key.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["kid"], key.key_id());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn sec1_keys_are_read_too() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let pkcs8 = PrivateKeyDer::from_pem_slice(pair.serialize_pem().as_bytes()).unwrap();
        let PrivateKeyDer::Pkcs8(pkcs8) = pkcs8 else {
            panic!("rcgen writes PKCS#8");
        };
        // The SEC1 ECPrivateKey is PKCS#8's last element (an OCTET STRING).
        let sec1 = last_octet_string(pkcs8.secret_pkcs8_der());
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(sec1)
        );
        let key = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(
            key.key_id(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(
                rcgen::PublicKeyData::subject_public_key_info(&pair)
            ))
        );
    }

    /// The content of the last OCTET STRING of a PKCS#8 PrivateKeyInfo.
    fn last_octet_string(pkcs8: &[u8]) -> Vec<u8> {
        // SEQUENCE header, then INTEGER 0, then the algorithm SEQUENCE.
        let mut i = 2 + usize::from(pkcs8[1] & 0x80 != 0) * usize::from(pkcs8[1] & 0x7f);
        i += 3;
        i += 2 + pkcs8[i + 1] as usize;
        assert_eq!(pkcs8[i], 0x04);
        let (len, header) = if pkcs8[i + 1] & 0x80 == 0 {
            (pkcs8[i + 1] as usize, 2)
        } else {
            (pkcs8[i + 2] as usize, 3)
        };
        pkcs8[i + header..i + header + len].to_vec()
    }

    #[test]
    fn rsa_keys_as_k3s_writes_them_sign_rs256() {
        // `openssl genrsa -traditional 2048`: PKCS#1, k3s's service.key format.
        let key = SigningKey::from_pem(include_str!("fixtures/rsa-2048.pem")).unwrap();
        assert_eq!(key.algorithm(), "RS256");
        // `openssl rsa -pubout -outform DER | sha256 | base64url`.
        assert_eq!(key.key_id(), "dd4Xv2U6RFxLWHs4S0VTplCDsV9HurOh9tLZhuQYn1c");
        let signature = key.sign(b"input").unwrap();
        assert_eq!(signature.len(), 256);
        assert!(key.verify("RS256", b"input", &signature));
        assert!(!key.verify("RS256", b"other", &signature));
        assert!(!key.verify("ES256", b"input", &signature));
        let jwk = key.jwk();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["e"].as_str()),
            (Some("RSA"), Some("AQAB"))
        );
    }

    #[test]
    fn der_lengths_use_the_long_form_past_127_bytes() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
